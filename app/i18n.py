"""The registration form's words in Japanese and English, and the validation messages in both.

marshmallow (app/schemas.py) speaks English only. Its messages are mapped here, rule by rule, to
what a person filling in the form should read; a message we do not know yet is shown in its English
original rather than hidden, so a new rule in the schema is never silently lost.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from registrations.states import ConfirmationKind as Kind
from registrations.states import ConfirmationState as State

LANGUAGES = ("ja", "en")
DEFAULT_LANGUAGE = "ja"
# The other language of each, for the language switch.
OTHER_LANGUAGE = {"ja": "en", "en": "ja"}
# Each language's name written in itself: the switch link is read in the language it leads to.
LANGUAGE_NAMES = {"ja": "日本語", "en": "English"}


def choose_language(requested: str | None, accepted: Iterable[tuple[str, float]] = ()) -> str:
    """The page language: an explicit `lang` wins, then the browser's Accept-Language, then ja."""
    if requested in LANGUAGES:
        return str(requested)
    ranked = sorted(accepted, key=lambda pair: pair[1], reverse=True)
    for tag, quality in ranked:
        primary = tag.split("-", 1)[0].lower()
        if quality > 0 and primary in LANGUAGES:
            return primary
    return DEFAULT_LANGUAGE


LABELS: Mapping[str, Mapping[str, str]] = {
    "ja": {
        "email": "メールアドレス",
        "last_name": "姓",
        "first_name": "名",
        "last_name_kana": "セイ（フリガナ）",
        "first_name_kana": "メイ（フリガナ）",
        "phone": "電話番号",
        "birth_date": "生年月日",
        "postal_code": "郵便番号",
        "address": "住所",
        "gender": "性別",
        "accepts_marketing": "お得な情報やキャンペーンのお知らせをメールで受け取る",
    },
    "en": {
        "email": "Email address",
        "last_name": "Family name",
        "first_name": "Given name",
        "last_name_kana": "Family name in katakana",
        "first_name_kana": "Given name in katakana",
        "phone": "Phone number",
        "birth_date": "Date of birth",
        "postal_code": "Postal code",
        "address": "Address",
        "gender": "Gender",
        "accepts_marketing": "Email me news and offers",
    },
}

HINTS: Mapping[str, Mapping[str, str]] = {
    "ja": {
        "email": (
            "会員登録のお知らせと会員番号をお送りします。"
            "@より前は半角英数字と . _ + - などの記号のみ（引用符・空白・かな漢字は使えません）。"
        ),
        "last_name_kana": "全角カタカナ（例: ヤマダ）",
        "first_name_kana": "全角カタカナ（例: ハナコ）",
        "phone": "例: 090-1234-5678",
        "birth_date": "例: 1990-04-01",
        "postal_code": "例: 150-0001（ハイフンなしでも可）",
        "address": "都道府県から番地・建物名まで",
    },
    "en": {
        "email": (
            "We send your membership number here. Before the @: ASCII letters, digits and symbols "
            "such as . _ + - only (no quotes, spaces or accented letters)."
        ),
        "last_name_kana": "Full-width katakana, e.g. ヤマダ",
        "first_name_kana": "Full-width katakana, e.g. ハナコ",
        "phone": "For example 090-1234-5678",
        "birth_date": "For example 1990-04-01",
        "postal_code": "For example 150-0001 (the hyphen is optional)",
        "address": "Prefecture, city, street and building",
    },
}

GENDER_CHOICES: Mapping[str, Mapping[str, str]] = {
    "ja": {"": "選択しない", "female": "女性", "male": "男性", "unspecified": "回答しない"},
    "en": {"": "Not selected", "female": "Female", "male": "Male", "unspecified": "Prefer not to say"},
}

TEXT: Mapping[str, Mapping[str, str]] = {
    "ja": {
        "title": "会員登録",
        "intro": "ご登録いただくと、オンラインストアと店舗の両方で会員としてポイントが貯まります。",
        "required_note": "「必須」と書かれた項目は必ずご入力ください。",
        "required": "必須",
        "optional": "任意",
        "name_legend": "お名前",
        "kana_legend": "フリガナ",
        "address_legend": "ご住所",
        "marketing_legend": "お知らせメール",
        "submit": "登録する",
        "error_title": "入力内容を確認してください",
        "error_intro": "次の項目を修正してください。",
        "error_prefix": "エラー: ",
        "honeypot_label": "この欄には何も入力しないでください",
        "switch_language": "Switch to English",
        "thanks_title": "ご登録ありがとうございます",
        "thanks_body": "会員登録を受け付けました。",
        "thanks_email": "会員番号を記載した確認メールをまもなくお送りします。",
        "thanks_reference": "受付番号",
        "thanks_reference_note": "お問い合わせの際はこの番号をお知らせください。",
        "back_to_form": "登録フォームに戻る",
        "problem_title": "送信できませんでした",
        "csrf_problem": (
            "ページの有効期限が切れたか、送信内容を確認できませんでした。"
            "お手数ですが、フォームを開き直してもう一度送信してください。入力内容は保存されていません。"
        ),
        "bad_request_problem": "送信内容を読み取れませんでした。フォームを開き直してもう一度お試しください。",
        "too_large_problem": "送信内容が大きすぎます。入力内容を短くしてもう一度お試しください。",
        "rate_limited_problem": "短時間に送信が集中しています。しばらく待ってからもう一度お試しください。",
        "not_found_problem": "ページが見つかりません。",
        "busy_problem": (
            "ただいま混み合っています。登録はまだ受け付けていません。少し待ってからもう一度送信してください。"
        ),
    },
    "en": {
        "title": "Become a member",
        "intro": "Members collect points both in our online store and at the shop counter.",
        "required_note": "Fields marked “required” must be filled in.",
        "required": "required",
        "optional": "optional",
        "name_legend": "Your name",
        "kana_legend": "Your name in katakana",
        "address_legend": "Your address",
        "marketing_legend": "News by email",
        "submit": "Register",
        "error_title": "Please check your entries",
        "error_intro": "The following need your attention:",
        "error_prefix": "Error: ",
        "honeypot_label": "Leave this field empty",
        "switch_language": "日本語で表示",
        "thanks_title": "Thank you for registering",
        "thanks_body": "Your registration has been received.",
        "thanks_email": "We will email you your membership number shortly.",
        "thanks_reference": "Reference number",
        "thanks_reference_note": "Please quote this number if you contact us.",
        "back_to_form": "Back to the registration form",
        "problem_title": "Your form could not be sent",
        "csrf_problem": (
            "The page expired or the form could not be verified. Please open the form again and "
            "resubmit it. Nothing you entered was saved."
        ),
        "bad_request_problem": "The form could not be read. Please open it again and retry.",
        "too_large_problem": "The form was too large. Please shorten your entries and retry.",
        "rate_limited_problem": "Too many submissions in a short time. Please wait a moment and retry.",
        "not_found_problem": "Page not found.",
        "busy_problem": (
            "We are very busy right now and your registration was not received yet. "
            "Please send it again in a moment."
        ),
    },
}


@dataclass(frozen=True)
class MessageRule:
    """One marshmallow message (a regex over its English text) and what the form says instead.

    `en` is None where marshmallow's English already reads well to a person; `{label}` is the field's
    label and named groups of the pattern (such as `max`) fill the other placeholders.
    """

    pattern: re.Pattern[str]
    ja: str
    en: str | None = None


def _rule(pattern: str, ja: str, en: str | None = None) -> MessageRule:
    return MessageRule(re.compile(pattern), ja, en)


MESSAGE_RULES: tuple[MessageRule, ...] = (
    _rule(r"Missing data for required field\.", "{label}を入力してください。", "Enter your {label_lower}."),
    _rule(r"Field may not be null\.", "{label}を入力してください。", "Enter your {label_lower}."),
    _rule(r"Not a valid string\.", "{label}を文字で入力してください。"),
    _rule(r"Must not be empty\.", "{label}を入力してください。", "Enter your {label_lower}."),
    _rule(
        r"Must be at most (?P<max>\d+) characters\.",
        "{max}文字以内で入力してください。",
        "Enter at most {max} characters.",
    ),
    _rule(
        r"Must be at most (?P<max>\d+) bytes\.",
        "{max}バイト以内で入力してください（全角文字は1文字で3バイト程度です）。",
        "Enter at most {max} bytes (a non-ASCII character takes two to four).",
    ),
    _rule(
        r"Length must be between (?P<min>\d+) and (?P<max>\d+)\.",
        "{min}〜{max}文字で入力してください。",
        "Enter between {min} and {max} characters.",
    ),
    _rule(
        r"Longer than maximum length (?P<max>\d+)\.",
        "{max}文字以内で入力してください。",
        "Enter at most {max} characters.",
    ),
    _rule(
        r"Shorter than minimum length (?P<min>\d+)\.",
        "{min}文字以上で入力してください。",
        "Enter at least {min} characters.",
    ),
    _rule(
        r"Not a valid email address\.",
        "メールアドレスを name@example.com の形式で入力してください。",
        "Enter an email address like name@example.com.",
    ),
    _rule(
        r"Before the @, use only ASCII letters.*",
        "@より前は半角英数字と . _ + - などの記号で入力してください"
        "（引用符・空白は使えません。ドットは先頭・末尾・連続では使えません）。",
    ),
    _rule(
        r"Must be at most (?P<max>\d+) characters before the @\.",
        "@より前は{max}文字以内で入力してください。",
        "Enter at most {max} characters before the @.",
    ),
    _rule(
        r"After the @, use a domain name.*",
        "@より後ろは半角英数字・ハイフン・ドットのドメイン名で入力してください"
        "（日本語ドメインは xn-- で始まる形式で）。",
    ),
    # The characters app/text.py refuses in every field, one rule per reason.
    _rule(
        r"Must not contain unpaired surrogates.*",
        "文字として読み取れないデータが含まれています。入力し直してください。",
        "Contains data that is not text. Please type it again.",
    ),
    _rule(r"Must not contain control characters\.", "使用できない制御文字が含まれています。"),
    _rule(
        r"Must not contain invisible formatting characters.*",
        "目に見えない書式制御文字（文字の向きを変える記号やゼロ幅の文字など）が含まれています。"
        "入力し直してください。",
        "Contains invisible formatting characters (such as direction or zero-width marks). "
        "Please type it again.",
    ),
    _rule(
        r"Must not contain line or paragraph separators\.",
        "改行や段落の区切り文字は使えません。",
        "Line or paragraph breaks are not allowed here.",
    ),
    _rule(
        r"Must not contain replacement characters or noncharacters.*",
        "文字化けした文字が含まれています。入力し直してください。",
        "Contains garbled characters. Please type it again.",
    ),
    _rule(r"Must be written in katakana.*", "全角カタカナで入力してください。"),
    _rule(
        r"Not a valid date\.",
        "日付を 1990-04-01 の形式で入力してください。",
        "Enter a date like 1990-04-01.",
    ),
    _rule(r"Must be in the past\.", "今日より前の日付を入力してください。", "Enter a date in the past."),
    _rule(
        r"Must be on or after (?P<date>[0-9-]+)\.",
        "{date} 以降の日付を入力してください。",
        "Enter a date on or after {date}.",
    ),
    _rule(r"Must be a Japanese postal code.*", "郵便番号を 150-0001 の形式で入力してください。"),
    _rule(
        r"Not a (valid )?phone number\.",
        "電話番号を 090-1234-5678 のように入力してください。",
        "Enter a phone number like 090-1234-5678.",
    ),
    _rule(r"Must be one of: .*", "選択肢から選んでください。", "Choose one of the options."),
    _rule(r"Not a valid boolean\.", "チェックボックスの値が正しくありません。"),
)


def localise_message(field: str, message: str, language: str) -> str:
    """The message marshmallow gave for `field`, as the form shows it in `language`."""
    label = LABELS.get(language, LABELS["en"]).get(field, field)
    for rule in MESSAGE_RULES:
        match = rule.pattern.fullmatch(message)
        if match is None:
            continue
        template = rule.ja if language == "ja" else rule.en
        if template is None:
            return message
        return template.format(label=label, label_lower=label.lower(), **match.groupdict())
    return message


def localise_errors(messages: object, language: str) -> dict[str, list[str]]:
    """marshmallow's `ValidationError.messages` as {field: [message]} in `language`."""
    if not isinstance(messages, dict):
        messages = {"_schema": messages}
    localised: dict[str, list[str]] = {}
    for field, value in messages.items():
        items = value if isinstance(value, list) else [value]
        localised[str(field)] = [localise_message(str(field), str(item), language) for item in items]
    return localised


# The confirmation pages behind the links we mail (app/confirm.py). The questions are keyed by the
# confirmation's `text_version` (registrations.confirmations.TEXT_VERSIONS), so the record names the
# exact words its owner answered: a new wording is a new version added here, and an old version stays
# as long as records point at it. `{shop}` is the shop's name (MAIL_FROM's display name). No page ever
# shows personal data: a link can be forwarded.
CONFIRMATION_QUESTIONS: Mapping[str, Mapping[str, Mapping[str, str]]] = {
    "marketing-2026-12": {
        "ja": {
            "title": "お知らせメールの確認",
            "question": "{shop} からのお知らせをメールで受け取りますか？",
            "hint": "配信はいつでも、各メールにある配信停止のリンクから止められます。",
            "yes": "はい、お知らせを受け取ります",
        },
        "en": {
            "title": "News by e-mail",
            "question": "Receive news by e-mail from {shop}?",
            "hint": "You can stop them at any time with the unsubscribe link in every message.",
            "yes": "Yes, send me news",
        },
    },
    "profile-2026-12": {
        "ja": {
            "title": "会員情報の更新の確認",
            "question": (
                "お客様のメールアドレスで会員登録がありました。"
                "そのとき入力された内容を、お客様の会員情報に反映しますか？"
            ),
            "hint": "お心当たりがない場合は「いいえ」を選んでください。会員情報は変更されません。",
            "marketing_note": (
                "「はい」を選ぶと、{shop} からのお知らせメールの受け取りにも同意したことになります。"
            ),
            "yes": "はい、反映します",
            "no": "いいえ、変更しません",
        },
        "en": {
            "title": "Update your membership?",
            "question": (
                "Someone registered with your e-mail address. "
                "Apply the details they entered to your membership?"
            ),
            "hint": "If this was not you, choose No: nothing in your membership changes.",
            "marketing_note": (
                "Yes also subscribes you to news by e-mail from {shop}, as that registration asked."
            ),
            "yes": "Yes, apply them",
            "no": "No, change nothing",
        },
    },
    "card-2026-12": {
        "ja": {
            "title": "会員カードの確認",
            "question": (
                "このメールアドレスで店舗にて作成された会員カードが見つかりました。お客様のカードですか？"
            ),
            "yes": "はい、このカードと会員番号を使います",
            "no": "いいえ、自分のカードを作ってください",
        },
        "en": {
            "title": "Is this your member card?",
            "question": "We found a member card made in our shop with this e-mail address. Is it yours?",
            "yes": "Yes, keep that card and its number",
            "no": "No, give me a card of my own",
        },
    },
}

# What was decided, by (kind, state) of the confirmation: shown after the answer and whenever its link
# is opened again.
CONFIRMATION_OUTCOMES: Mapping[str, Mapping[tuple[str, str], str]] = {
    "ja": {
        (Kind.MARKETING, State.CONFIRMED): (
            "{shop} からのお知らせをメールでお届けします。配信はいつでも停止できます。"
        ),
        (Kind.MARKETING, State.DECLINED): "お知らせメールはお送りしません。",
        (Kind.MARKETING, State.WITHDRAWN): "{shop} からのお知らせメールの配信を停止しました。",
        (Kind.MARKETING, State.EXPIRED): "確認の期限が過ぎたため、お知らせメールはお送りしません。",
        (Kind.PROFILE, State.CONFIRMED): "入力された内容を会員情報に反映します。",
        (Kind.PROFILE, State.DECLINED): "会員情報は変更しません。",
        (Kind.PROFILE, State.EXPIRED): "確認の期限が過ぎたため、会員情報は変更しません。",
        (Kind.CARD, State.CONFIRMED): (
            "見つかった会員カードをお客様の会員情報に結び付けます。会員番号はそのまま使えます。"
        ),
        (Kind.CARD, State.DECLINED): "お客様専用の会員カードをお作りします。",
        (Kind.CARD, State.EXPIRED): "確認の期限が過ぎたため、お客様専用の会員カードをお作りします。",
    },
    "en": {
        (Kind.MARKETING, State.CONFIRMED): (
            "You will receive news by e-mail from {shop}. You can stop it at any time."
        ),
        (Kind.MARKETING, State.DECLINED): "You will not receive news by e-mail.",
        (Kind.MARKETING, State.WITHDRAWN): "You no longer receive news by e-mail from {shop}.",
        (Kind.MARKETING, State.EXPIRED): (
            "The time to confirm has passed: you will not receive news by e-mail."
        ),
        (Kind.PROFILE, State.CONFIRMED): "The details they entered will be applied to your membership.",
        (Kind.PROFILE, State.DECLINED): "Nothing in your membership changes.",
        (Kind.PROFILE, State.EXPIRED): "The time to confirm has passed: nothing in your membership changes.",
        (Kind.CARD, State.CONFIRMED): "The card is linked to your membership and keeps its number.",
        (Kind.CARD, State.DECLINED): "We will make you a card of your own.",
        (Kind.CARD, State.EXPIRED): "The time to confirm has passed: we will make you a card of your own.",
    },
}

CONFIRMATION_TEXT: Mapping[str, Mapping[str, str]] = {
    "ja": {
        "switch_language": TEXT["ja"]["switch_language"],
        "done_title": "ありがとうございます",
        "decided_title": "回答済みです",
        "expired_title": "有効期限が切れています",
        "unsubscribe_title": "お知らせメールの配信停止",
        "unsubscribe_question": "{shop} からのお知らせメールの配信を停止しますか？",
        "unsubscribe_button": "お知らせメールを停止する",
        "unsubscribed_title": "配信を停止しました",
        "invalid_title": "このリンクは使えません",
        "invalid_body": (
            "リンクが正しくないか、有効期限が切れています。メールからコピーした場合は、"
            "リンク全体がコピーされているかご確認ください。"
        ),
        "problem_title": "送信できませんでした",
        "bad_request_body": "回答を読み取れませんでした。メールのリンクを開き直してもう一度お試しください。",
        "rate_limited_body": "短時間にアクセスが集中しています。しばらく待ってからもう一度お試しください。",
    },
    "en": {
        "switch_language": TEXT["en"]["switch_language"],
        "done_title": "Thank you",
        "decided_title": "Already answered",
        "expired_title": "This request has expired",
        "unsubscribe_title": "Stop news by e-mail",
        "unsubscribe_question": "Stop receiving news by e-mail from {shop}?",
        "unsubscribe_button": "Stop news by e-mail",
        "unsubscribed_title": "Unsubscribed",
        "invalid_title": "This link cannot be used",
        "invalid_body": (
            "The link is not valid or has expired. If you copied it from an e-mail, check that "
            "you copied all of it."
        ),
        "problem_title": "Your answer could not be sent",
        "bad_request_body": "Your answer could not be read. Please open the link in the e-mail again.",
        "rate_limited_body": "Too many requests in a short time. Please wait a moment and retry.",
    },
}

"""The ops console in Japanese and English.

Which language: `?lang=ja|en` on any console page (remembered in a cookie for a year), else the
cookie, else the browser's Accept-Language, else Japanese (app.i18n.choose_language: the shop is a
Japanese shop, and the form chooses the same way). Every page carries a link to the other language.

The templates write their words in English inside `_()` ("gettext" style): English is the key, and
a string without a Japanese entry below is shown in English rather than hidden, so a new page or
message is never blank while its translation is missing. Vocabulary the CLI, the API and Flower also
show (step states, registration statuses, system names, reasons, task names) stays as it is: an
operator reading a Japanese page can still match it with a log line or a command's output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from flask import Response, g, request

from app.i18n import DEFAULT_LANGUAGE, LANGUAGE_NAMES, LANGUAGES, OTHER_LANGUAGE, choose_language
from app.ops.blueprint import blueprint

COOKIE = "ops_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

# English (the key, as the templates write it) → Japanese.
JAPANESE: Mapping[str, str] = {
    # Layout and navigation
    "Ops console": "運用コンソール",
    "Membersync ops": "Membersync 運用",
    "Overview": "概要",
    "Find a person": "会員検索",
    "Dead letters": "デッドレター",
    "Audit trail": "操作履歴",
    "Signed in as": "ログイン中:",
    "Sign out": "ログアウト",
    "Language": "言語",
    # Problem pages
    "Request refused": "リクエストを受け付けられません",
    "The form was stale or incomplete. Go back, reload the page and try again.": (
        "フォームが古いか不完全です。前のページに戻り、再読み込みしてからもう一度お試しください。"
    ),
    "Sign-in required": "ログインが必要です",
    "Sign in to use the ops console.": "運用コンソールを使うにはログインしてください。",
    "Not found": "見つかりません",
    "There is nothing at this address.": "このアドレスには何もありません。",
    "Not allowed": "許可されていません",
    "This address does not take that kind of request.": (
        "このアドレスはその種類のリクエストを受け付けません。"
    ),
    "Too many attempts": "試行回数が多すぎます",
    "Too many failed sign-in attempts. Wait a minute and try again.": (
        "ログインの失敗が多すぎます。1 分待ってからもう一度お試しください。"
    ),
    "Back to the ops console": "運用コンソールに戻る",
    # Sign-in
    "Sign in": "ログイン",
    "Sign in to the ops console": "運用コンソールにログイン",
    "Sign-in refused": "ログインできませんでした",
    "That username and password do not match. Try again.": (
        "ユーザー名とパスワードが一致しません。もう一度お試しください。"
    ),
    "Username": "ユーザー名",
    "Password": "パスワード",
    # Overview: sync health
    "Sync health": "同期の状態",
    "Over the last": "期間:",
    "Vendor": "連携先",
    "Credentials and scopes": "認証情報と権限",
    "Last successful call": "最後に成功した呼び出し",
    "Succeeded": "成功",
    "Error rate": "エラー率",
    "What to do": "対処方法",
    "checking…": "確認中…",
    "The credentials check is still running: reload in a moment.": (
        "認証情報の確認を実行中です。しばらくしてから再読み込みしてください。"
    ),
    # Overview
    "Registrations by status": "ステータス別の登録数",
    "Status": "ステータス",
    "Registrations": "登録数",
    "Time to synced, last 24 h": "同期完了までの時間（過去 24 時間）",
    "Percentile": "パーセンタイル",
    "Accepted → synced": "受付 → 同期完了",
    "No registration was synced in the last 24 hours.": "過去 24 時間に同期を完了した登録はありません。",
    "Open dead letters": "未処理のデッドレター",
    "System": "システム",
    "Reason": "理由",
    "Open": "未処理",
    "None: every step finished or is still running.": "ありません。すべての処理が完了したか、実行中です。",
    "Queue depths": "キューの待ち件数",
    "Queue": "キュー",
    "Waiting": "待ち",
    "Unavailable: the broker did not answer.": "取得できません: ブローカーが応答しませんでした。",
    "Rate-limit headroom": "レート制限の残り",
    "Unavailable: Redis did not answer.": "取得できません: Redis が応答しませんでした。",
    "Budget": "枠",
    "Tokens": "残りトークン",
    "Refill /s": "回復 /秒",
    "Paused": "停止中",
    "no": "いいえ",
    "yes": "はい",
    "Last reconciliation": "前回の突き合わせ",
    "No reconciliation has run yet.": "突き合わせはまだ実行されていません。",
    "Started": "開始",
    "Finished": "終了",
    "Counts": "件数",
    "Error": "エラー",
    "Phase": "段階",
    "People": "人数",
    "Writes": "書き込み",
    "API calls": "API 呼び出し",
    "Duration": "所要時間",
    "Examples": "例",
    # Find
    "Search": "検索",
    "Find": "検索",
    "Name, kana, e-mail, phone, member number or id": "氏名・フリガナ・メール・電話番号・会員番号・ID",
    (
        "A name (kanji, katakana, hiragana or Latin letters; part of one will do), an e-mail address, "
        "a phone number, a member number (Smaregi customerCode), a Shopify customer id (a number or "
        "gid://shopify/Customer/…), a HubSpot contact id, a Smaregi customerId, a registration id (or the 8 "
        "characters the lists show) or a dead letter's number (#12)."
    ): (
        "氏名（漢字・カナ・ひらがな、一部でも可）、メールアドレス、電話番号、会員番号（スマレジの会員コード）、"
        "Shopify の顧客 ID（数字または gid://shopify/Customer/…）、"
        "HubSpot のコンタクト ID、スマレジの会員 ID、"
        "登録 ID（一覧に表示される先頭 8 文字でも可）、デッドレター番号（#12）のどれでも検索できます。"
    ),
    "Enter something to search for.": "検索する内容を入力してください。",
    "Nobody matches that search.": "該当する会員は見つかりませんでした。",
    "Search: {problem}": "検索: {problem}",
    "Search: must be at most {limit} characters.": "検索: {limit} 文字以内で入力してください。",
    "{count} matches": "{count} 件見つかりました",
    "Only the first {count} are shown: search more precisely.": (
        "最初の {count} 件だけを表示しています。条件を絞り込んでください。"
    ),
    "Matched by": "一致した項目",
    "Name": "氏名",
    "Member number": "会員番号",
    "Accepted": "受付日時",
    "Registration": "登録",
    "Dead letter": "デッドレター",
    "No registration or dead letter has that id.": "その ID の登録またはデッドレターはありません。",
    "No registration was made with that address.": "そのメールアドレスでの登録はありません。",
    "Enter an e-mail address.": "メールアドレスを入力してください。",
    # What a search matched on
    "registration id": "登録 ID",
    "registration id prefix": "登録 ID の先頭",
    "dead letter number": "デッドレター番号",
    "e-mail": "メールアドレス",
    "phone": "電話番号",
    "name": "氏名",
    "kana": "フリガナ",
    "member number": "会員番号",
    "Shopify id": "Shopify の ID",
    "HubSpot id": "HubSpot の ID",
    "Smaregi id": "スマレジの会員 ID",
    # Registration page
    "accepted": "受付",
    "updated": "更新",
    "source": "経路",
    "Steps": "各システムの処理",
    "State": "状態",
    "External id": "外部 ID",
    "Attempts": "試行回数",
    "Last error": "直近のエラー",
    "Note": "メモ",
    "Updated": "更新日時",
    "Celery task": "Celery タスク",
    "in Flower": "Flower で開く",
    "opens in a new tab": "新しいタブで開きます",
    "Message": "メッセージ",
    "Last failed": "最終失敗日時",
    "None.": "ありません。",
    "Registrant": "登録者",
    "Personal data: shown to signed-in ops on this page only. Do not copy it elsewhere.": (
        "個人情報です。ログインした運用担当者にこのページでのみ表示されます。他へ転記しないでください。"
    ),
    "E-mail": "メールアドレス",
    "Name (kana)": "氏名（フリガナ）",
    "Phone": "電話番号",
    "Date of birth": "生年月日",
    "Postal code": "郵便番号",
    "Address": "住所",
    "Gender": "性別",
    "Marketing e-mail": "お知らせメール",
    "Member number mailed": "会員番号のメール送信",
    "not yet": "まだありません",
    # Audit trail
    "When": "日時",
    "Who": "操作者",
    "What": "操作",
    "Outcome": "結果",
    "From": "接続元",
    "Via": "経由",
    "Nothing yet.": "まだありません。",
    # Dead letters
    "Filter": "絞り込む",
    "any": "すべて",
    "Select": "選択",
    "Task": "タスク",
    "First failed": "最初の失敗日時",
    "Notes": "メモ",
    "Change": "変更",
    "How to re-run it": "再実行の方法",
    "Resolved": "解決",
    "Failed again after": "再実行後に再び失敗（元）",
    "Failed again as": "再実行後に再び失敗（次）",
    "Replay": "再実行",
    "Discard": "破棄",
    "Note (required to discard)": "メモ（破棄するときは必須）",
    "No dead letters match this filter.": "この条件に合うデッドレターはありません。",
    "From a shell on a machine with the configuration:": "設定のあるマシンのシェルから:",
    "From Flower's API (the same basic-auth login):": "Flower の API から（同じベーシック認証で）:",
    "Pages": "ページ",
    "← Newer": "← 新しい順",
    "Older →": "古い順 →",
    "Page {number}": "{number} ページ",
}

CATALOGUE: Mapping[str, Mapping[str, str]] = {"ja": JAPANESE, "en": {}}


def console_language() -> str:
    """This request's console language (see the module's docstring for the order)."""
    chosen: str | None = g.get("ops_language")
    if chosen is None:
        requested = request.args.get("lang") or request.cookies.get(COOKIE)
        chosen = choose_language(requested, request.accept_languages)
        g.ops_language = chosen
    return chosen


def translate(text: str, language: str, **values: Any) -> str:
    """`text` (English, the key) in `language`, with `values` put into its `{placeholders}`."""
    words = CATALOGUE.get(language, {}).get(text, text)
    return words.format(**values) if values else words


@blueprint.app_template_global("_")
def _gettext(text: str, **values: Any) -> str:
    return translate(text, console_language(), **values)


@blueprint.after_request
def _remember_language(response: Response) -> Response:
    # The page depends on the cookie and the browser's languages: no shared cache may mix them.
    response.vary.add("Accept-Language")
    response.vary.add("Cookie")
    requested = request.args.get("lang")
    if requested in LANGUAGES and requested != request.cookies.get(COOKIE):
        response.set_cookie(
            COOKIE,
            requested,
            max_age=COOKIE_MAX_AGE,
            path=blueprint.url_prefix or "/",
            secure=request.is_secure,
            httponly=True,
            samesite="Lax",
        )
    return response


@blueprint.context_processor
def _language_context() -> dict[str, Any]:
    language = console_language()
    other = OTHER_LANGUAGE[language]
    # The page itself in the other language (a POST's answer: the same address, asked for anew).
    arguments = request.args.to_dict() if request.method in {"GET", "HEAD"} else {}
    switch = f"{request.path}?{urlencode({**arguments, 'lang': other})}"
    return {
        "lang": language,
        "other_lang": other,
        "other_lang_name": LANGUAGE_NAMES[other],
        "language_switch_url": switch,
    }


__all__ = ["COOKIE", "DEFAULT_LANGUAGE", "console_language", "translate"]

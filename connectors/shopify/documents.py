"""Every GraphQL document the Shopify connector sends (Admin API 2026-10).

User data never goes into these strings: it travels in `variables`. The one exception is the bulk
export, whose inner query is fixed text because Shopify runs bulk queries without variables.
`ALL_DOCUMENTS` lists them all so tests can validate each against Shopify's real schema, and check
that none selects a field Shopify deprecates in 2026-10 (`Customer.email`, `Customer.phone`,
`Customer.emailMarketingConsent` and `currentBulkOperation` are).
"""

from __future__ import annotations

# Where the member facts Smaregi owns (member number, points, rank) live on a Shopify customer: the
# app-owned namespace, which other apps and the merchant cannot edit (Shopify stores it as
# app--<app id>--membersync). The same names as registrations.owned_fields' SHOPIFY_APP_NAMESPACE,
# SHOPIFY_FACT_KEYS and SHOPIFY_FACT_TYPES (a connector cannot import them; a unit test keeps them
# equal). The namespace is fixed text in MemberCustomer: no user data.
MEMBER_FACTS_NAMESPACE = "$app:membersync"
MEMBER_FACT_KEYS = {"member_number": "member_number", "points": "points", "rank": "rank"}
MEMBER_FACT_TYPES = {
    "member_number": "single_line_text_field",
    "points": "number_integer",
    "rank": "single_line_text_field",
}
MEMBER_NUMBER_KEY = MEMBER_FACT_KEYS["member_number"]
# The registration that created the customer (set by customerCreate): how a retry whose create answer
# was lost tells its own customer from one that already held the address (never written to). It stays
# in the shared `membersync` namespace it was always written to.
REGISTRATION_NAMESPACE = "membersync"
MEMBER_NUMBER_NAMESPACE = REGISTRATION_NAMESPACE  # the old name of that namespace, kept for callers
REGISTRATION_KEY = "registration"

# The customer fields every read and write brings back, so the connector maps one shape.
CUSTOMER_FIELDS = """
fragment MemberCustomer on Customer {
  id
  defaultEmailAddress {
    emailAddress
    marketingState
    marketingOptInLevel
    marketingUpdatedAt
  }
  firstName
  lastName
  defaultPhoneNumber {
    phoneNumber
  }
  defaultAddress {
    id
    zip
    address1
  }
  locale
  note
  tags
  state
  createdAt
  updatedAt
}
"""

# The member facts of a customer (the reads that answer a customer, not the mutations): aliased reads
# of the app-owned namespace, names in variables ($factsNamespace, $memberNumberKey, $pointsKey,
# $rankKey: `client.FACT_VARIABLES`).
MEMBER_FACT_FIELDS = """
fragment MemberFacts on Customer {
  factMemberNumber: metafield(namespace: $factsNamespace, key: $memberNumberKey) {
    value
  }
  factPoints: metafield(namespace: $factsNamespace, key: $pointsKey) {
    value
  }
  factRank: metafield(namespace: $factsNamespace, key: $rankKey) {
    value
  }
}
"""
FACT_VARIABLE_DEFINITIONS = (
    "$factsNamespace: String!, $memberNumberKey: String!, $pointsKey: String!, $rankKey: String!"
)

USER_ERROR_FIELDS = """
fragment MemberUserError on UserError {
  field
  message
}
"""

# $input: CustomerInput with email, names, phone, locale, tags and emailMarketingConsent (no addresses:
# CustomerInput.addresses is deprecated in 2026-10; ADD_CUSTOMER_ADDRESS follows). "Email has already
# been taken" comes back in userErrors, not as an error.
CREATE_CUSTOMER = (
    """
mutation CreateCustomer($input: CustomerInput!) {
  customerCreate(input: $input) {
    customer {
      ...MemberCustomer
    }
    userErrors {
      ...MemberUserError
    }
  }
}
"""
    + CUSTOMER_FIELDS
    + USER_ERROR_FIELDS
)

# The one customer whose email is exactly $email, or null: a lookup, not the tokenising, index-lagged
# search of customers(query:). Emails are unique per shop, so there is never more than one.
FIND_CUSTOMER_BY_EMAIL = (
    """
query FindCustomerByEmail(
  $email: String!, $metafieldNamespace: String!, $registrationKey: String!, """
    + FACT_VARIABLE_DEFINITIONS
    + """
) {
  customerByIdentifier(identifier: {emailAddress: $email}) {
    ...MemberCustomer
    ...MemberFacts
    registration: metafield(namespace: $metafieldNamespace, key: $registrationKey) {
      value
    }
  }
}
"""
    + CUSTOMER_FIELDS
    + MEMBER_FACT_FIELDS
)

# One customer by global id, with its member facts.
GET_CUSTOMER = (
    """
query GetCustomer($id: ID!, """
    + FACT_VARIABLE_DEFINITIONS
    + """) {
  customer(id: $id) {
    ...MemberCustomer
    ...MemberFacts
  }
}
"""
    + CUSTOMER_FIELDS
    + MEMBER_FACT_FIELDS
)

# $input carries the customer's `id` plus only the fields to change.
UPDATE_CUSTOMER = (
    """
mutation UpdateCustomer($input: CustomerInput!) {
  customerUpdate(input: $input) {
    customer {
      ...MemberCustomer
    }
    userErrors {
      ...MemberUserError
    }
  }
}
"""
    + CUSTOMER_FIELDS
    + USER_ERROR_FIELDS
)

# $input: CustomerEmailMarketingConsentUpdateInput {customerId, emailMarketingConsent {marketingState,
# marketingOptInLevel, consentUpdatedAt}}: the only way consent changes after the create (PENDING ->
# SUBSCRIBED on confirmation, UNSUBSCRIBED on withdrawal). Its userErrors carry a `code` (INCLUSION,
# INVALID, MISSING_ARGUMENT, INTERNAL_ERROR), so they are not the UserError fragment's type.
UPDATE_MARKETING_CONSENT = (
    """
mutation UpdateMarketingConsent($input: CustomerEmailMarketingConsentUpdateInput!) {
  customerEmailMarketingConsentUpdate(input: $input) {
    customer {
      ...MemberCustomer
    }
    userErrors {
      field
      message
      code
    }
  }
}
"""
    + CUSTOMER_FIELDS
)

# $address: MailingAddressInput; $setAsDefault true makes it the customer's default address.
ADD_CUSTOMER_ADDRESS = (
    """
mutation AddCustomerAddress($customerId: ID!, $address: MailingAddressInput!, $setAsDefault: Boolean) {
  customerAddressCreate(customerId: $customerId, address: $address, setAsDefault: $setAsDefault) {
    address {
      id
    }
    userErrors {
      ...MemberUserError
    }
  }
}
"""
    + USER_ERROR_FIELDS
)

# $address carries only the fields to change.
UPDATE_CUSTOMER_ADDRESS = (
    """
mutation UpdateCustomerAddress(
  $customerId: ID!
  $addressId: ID!
  $address: MailingAddressInput!
  $setAsDefault: Boolean
) {
  customerAddressUpdate(
    customerId: $customerId
    addressId: $addressId
    address: $address
    setAsDefault: $setAsDefault
  ) {
    address {
      id
    }
    userErrors {
      ...MemberUserError
    }
  }
}
"""
    + USER_ERROR_FIELDS
)

# $metafields: [{ownerId, namespace, key, type, value, compareDigest?}], at most 25; all or nothing.
SET_METAFIELDS = """
mutation SetMetafields($metafields: [MetafieldsSetInput!]!) {
  metafieldsSet(metafields: $metafields) {
    metafields {
      id
      namespace
      key
      type
      value
      compareDigest
    }
    userErrors {
      field
      message
      code
      elementIndex
    }
  }
}
"""

# $definition: MetafieldDefinitionInput {namespace, key, name, type, ownerType: CUSTOMER}. A definition
# that exists already answers userError TAKEN (harmless: connectors.shopify.answers).
CREATE_METAFIELD_DEFINITION = """
mutation CreateMetafieldDefinition($definition: MetafieldDefinitionInput!) {
  metafieldDefinitionCreate(definition: $definition) {
    createdDefinition {
      id
      namespace
      key
      type {
        name
      }
    }
    userErrors {
      field
      message
      code
    }
  }
}
"""

# The query a bulk export runs over every customer (no first/after: bulk operations page internally).
# Shopify runs bulk queries without variables, so the namespaces and keys are written into the text
# (constants above, never user data). The member facts and the registration mark are aliased single
# `metafield(namespace:, key:)` fields, not a `metafields` connection: every JSONL line is then one
# whole customer, with no `__parentId` child lines to join (they are not grouped after their parent
# unless groupObjects is true). The aliases are MemberFacts' and the lookups', so `customer_from_node`
# maps a line as it maps any other read.
_BULK_METAFIELD_READS = "".join(
    f"""
        {alias}: metafield(namespace: "{namespace}", key: "{key}") {{
          value
        }}"""
    for alias, namespace, key in (
        ("factMemberNumber", MEMBER_FACTS_NAMESPACE, MEMBER_FACT_KEYS["member_number"]),
        ("factPoints", MEMBER_FACTS_NAMESPACE, MEMBER_FACT_KEYS["points"]),
        ("factRank", MEMBER_FACTS_NAMESPACE, MEMBER_FACT_KEYS["rank"]),
        ("registration", REGISTRATION_NAMESPACE, REGISTRATION_KEY),
    )
)
BULK_CUSTOMERS_QUERY = f"""
{{
  customers {{
    edges {{
      node {{
        id
        defaultEmailAddress {{
          emailAddress
          marketingState
        }}
        firstName
        lastName
        defaultPhoneNumber {{
          phoneNumber
        }}
        defaultAddress {{
          id
          zip
          address1
        }}
        updatedAt{_BULK_METAFIELD_READS}
      }}
    }}
  }}
}}
"""

# $query is BULK_CUSTOMERS_QUERY.
START_BULK_CUSTOMER_EXPORT = """
mutation StartBulkCustomerExport($query: String!) {
  bulkOperationRunQuery(query: $query, groupObjects: false) {
    bulkOperation {
      id
      status
      createdAt
    }
    userErrors {
      field
      message
      code
    }
  }
}
"""

# $id is the bulkOperation.id StartBulkCustomerExport answered (currentBulkOperation is deprecated).
POLL_BULK_OPERATION = """
query PollBulkOperation($id: ID!) {
  bulkOperation(id: $id) {
    id
    status
    errorCode
    objectCount
    rootObjectCount
    fileSize
    url
    partialDataUrl
    createdAt
    completedAt
  }
}
"""

# `membersync check`: the cheapest read that proves the token and the API version (one object).
SHOP_NAME = """
query ShopName {
  shop {
    name
  }
}
"""

ALL_DOCUMENTS: dict[str, str] = {
    "CreateCustomer": CREATE_CUSTOMER,
    "FindCustomerByEmail": FIND_CUSTOMER_BY_EMAIL,
    "GetCustomer": GET_CUSTOMER,
    "UpdateCustomer": UPDATE_CUSTOMER,
    "UpdateMarketingConsent": UPDATE_MARKETING_CONSENT,
    "AddCustomerAddress": ADD_CUSTOMER_ADDRESS,
    "UpdateCustomerAddress": UPDATE_CUSTOMER_ADDRESS,
    "SetMetafields": SET_METAFIELDS,
    "CreateMetafieldDefinition": CREATE_METAFIELD_DEFINITION,
    "BulkCustomersQuery": BULK_CUSTOMERS_QUERY,
    "StartBulkCustomerExport": START_BULK_CUSTOMER_EXPORT,
    "PollBulkOperation": POLL_BULK_OPERATION,
    "ShopName": SHOP_NAME,
}

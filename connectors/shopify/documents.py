"""Every GraphQL document the Shopify connector sends (Admin API 2025-01).

User data never goes into these strings: it travels in `variables`. The one exception is the bulk
export, whose inner query is fixed text because Shopify runs bulk queries without variables.
`ALL_DOCUMENTS` lists them all so tests can validate each against Shopify's real schema.
"""

from __future__ import annotations

# Where the member number lives on a Shopify customer.
MEMBER_NUMBER_NAMESPACE = "membersync"
MEMBER_NUMBER_KEY = "member_number"

# The customer fields every read and write brings back, so the connector maps one shape.
CUSTOMER_FIELDS = """
fragment MemberCustomer on Customer {
  id
  email
  firstName
  lastName
  phone
  locale
  note
  tags
  state
  createdAt
  updatedAt
  emailMarketingConsent {
    marketingState
    marketingOptInLevel
    consentUpdatedAt
  }
}
"""

USER_ERROR_FIELDS = """
fragment MemberUserError on UserError {
  field
  message
}
"""

# $input: CustomerInput with email, names, phone, locale, tags, addresses, emailMarketingConsent and the
# member-number metafield. "Email has already been taken" comes back in userErrors, not as an error.
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

# $query is Shopify search syntax built by the connector: email:"<address>" with the address quoted
# (and any quote or backslash in it escaped) for an exact match. More than one hit means duplicates
# that the reconciler reports.
FIND_CUSTOMERS_BY_EMAIL = (
    """
query FindCustomersByEmail(
  $query: String!
  $first: Int!
  $metafieldNamespace: String!
  $metafieldKey: String!
) {
  customers(first: $first, query: $query) {
    nodes {
      ...MemberCustomer
      memberNumber: metafield(namespace: $metafieldNamespace, key: $metafieldKey) {
        id
        value
        type
        compareDigest
      }
    }
  }
}
"""
    + CUSTOMER_FIELDS
)

# One customer by global id, with the member-number metafield and its digest (for metafieldsSet's
# compare-and-set).
GET_CUSTOMER = (
    """
query GetCustomer($id: ID!, $metafieldNamespace: String!, $metafieldKey: String!) {
  customer(id: $id) {
    ...MemberCustomer
    memberNumber: metafield(namespace: $metafieldNamespace, key: $metafieldKey) {
      id
      value
      type
      compareDigest
    }
  }
}
"""
    + CUSTOMER_FIELDS
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

# The query a bulk export runs over every customer (no first/after: bulk operations page internally).
# Nested metafields come back as separate JSONL lines carrying __parentId.
BULK_CUSTOMERS_QUERY = """
{
  customers {
    edges {
      node {
        id
        email
        firstName
        lastName
        phone
        updatedAt
        metafields(namespace: "membersync") {
          edges {
            node {
              key
              value
            }
          }
        }
      }
    }
  }
}
"""

# $query is BULK_CUSTOMERS_QUERY.
START_BULK_CUSTOMER_EXPORT = """
mutation StartBulkCustomerExport($query: String!) {
  bulkOperationRunQuery(query: $query) {
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

POLL_CURRENT_BULK_OPERATION = """
query PollCurrentBulkOperation {
  currentBulkOperation(type: QUERY) {
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

ALL_DOCUMENTS: dict[str, str] = {
    "CreateCustomer": CREATE_CUSTOMER,
    "FindCustomersByEmail": FIND_CUSTOMERS_BY_EMAIL,
    "GetCustomer": GET_CUSTOMER,
    "UpdateCustomer": UPDATE_CUSTOMER,
    "SetMetafields": SET_METAFIELDS,
    "BulkCustomersQuery": BULK_CUSTOMERS_QUERY,
    "StartBulkCustomerExport": START_BULK_CUSTOMER_EXPORT,
    "PollCurrentBulkOperation": POLL_CURRENT_BULK_OPERATION,
}

"""The customer subset of Shopify's Admin GraphQL schema (2026-10), written by hand as SDL.

Every type, field, argument, input field and enum value below exists in Shopify's own 2026-10 schema
with the same type and wrapping; tests/integration/sandbox/test_shopify_schema.py checks this
against the published introspection file. Adding a field here means checking it there first. The
descriptions are ours, short on purpose: Shopify's reference documents the real meaning. Fields that
Shopify deprecates in 2026-10 are still served (as Shopify does) and marked deprecated here too.
"""

from __future__ import annotations

from graphql import GraphQLScalarType, GraphQLSchema, build_schema

ADMIN_SDL = """
schema {
  query: QueryRoot
  mutation: Mutation
}

"ISO 8601 date and time in UTC, e.g. 2025-01-31T09:00:00Z."
scalar DateTime

"An absolute URL."
scalar URL

"An unsigned 64-bit integer, serialised as a string of digits."
scalar UnsignedInt64

"Any JSON value."
scalar JSON

interface Node {
  id: ID!
}

interface LegacyInteroperability {
  legacyResourceId: UnsignedInt64!
}

interface HasCompareDigest {
  compareDigest: String!
}

interface DisplayableError {
  field: [String!]
  message: String!
}

interface HasMetafields {
  metafield(namespace: String, key: String!): Metafield
  metafields(
    namespace: String
    keys: [String!]
    first: Int
    after: String
    last: Int
    before: String
    reverse: Boolean = false
  ): MetafieldConnection!
}

type QueryRoot {
  customer(id: ID!): Customer
  customers(
    first: Int
    after: String
    last: Int
    before: String
    reverse: Boolean = false
    sortKey: CustomerSortKeys = ID
    query: String
  ): CustomerConnection!
  customerByIdentifier(identifier: CustomerIdentifierInput!): Customer
  bulkOperation(id: ID!): BulkOperation
  currentBulkOperation(type: BulkOperationType = QUERY): BulkOperation
    @deprecated(reason: "Use `bulkOperations` with status filter instead.")
  shop: Shop!
}

"The shop itself; only its name (what `membersync check` reads)."
type Shop {
  name: String!
}

type Mutation {
  customerCreate(input: CustomerInput!): CustomerCreatePayload
  customerUpdate(input: CustomerInput!): CustomerUpdatePayload
  customerDelete(input: CustomerDeleteInput!): CustomerDeletePayload
  customerAddressCreate(
    customerId: ID!
    address: MailingAddressInput!
    setAsDefault: Boolean
  ): CustomerAddressCreatePayload
  customerAddressUpdate(
    customerId: ID!
    addressId: ID!
    address: MailingAddressInput!
    setAsDefault: Boolean
  ): CustomerAddressUpdatePayload
  customerEmailMarketingConsentUpdate(
    input: CustomerEmailMarketingConsentUpdateInput!
  ): CustomerEmailMarketingConsentUpdatePayload
  metafieldsSet(metafields: [MetafieldsSetInput!]!): MetafieldsSetPayload
  metafieldDefinitionCreate(definition: MetafieldDefinitionInput!): MetafieldDefinitionCreatePayload
  bulkOperationRunQuery(query: String!, groupObjects: Boolean! = false): BulkOperationRunQueryPayload
}

type Customer implements HasMetafields & LegacyInteroperability & Node {
  addresses(first: Int): [MailingAddress!]!
    @deprecated(reason: "Limited to 250 addresses. Use `addressesV2` for paginated access to all addresses.")
  createdAt: DateTime!
  defaultAddress: MailingAddress
  defaultEmailAddress: CustomerEmailAddress
  defaultPhoneNumber: CustomerPhoneNumber
  displayName: String!
  email: String @deprecated(reason: "Use `defaultEmailAddress.emailAddress` instead.")
  emailMarketingConsent: CustomerEmailMarketingConsentState
    @deprecated(reason: "Use `defaultEmailAddress.marketingState` and related fields instead.")
  firstName: String
  id: ID!
  lastName: String
  legacyResourceId: UnsignedInt64!
  locale: String!
  metafield(namespace: String, key: String!): Metafield
  metafields(
    namespace: String
    keys: [String!]
    first: Int
    after: String
    last: Int
    before: String
    reverse: Boolean = false
  ): MetafieldConnection!
  note: String
  numberOfOrders: UnsignedInt64!
  phone: String @deprecated(reason: "Use `defaultPhoneNumber.phoneNumber` instead.")
  state: CustomerState!
  tags: [String!]!
  taxExempt: Boolean!
  updatedAt: DateTime!
  verifiedEmail: Boolean!
}

type CustomerEmailAddress {
  emailAddress: String!
  marketingOptInLevel: CustomerMarketingOptInLevel
  marketingState: CustomerEmailAddressMarketingState!
  marketingUpdatedAt: DateTime
  validFormat: Boolean!
}

enum CustomerEmailAddressMarketingState {
  INVALID
  NOT_SUBSCRIBED
  PENDING
  SUBSCRIBED
  UNSUBSCRIBED
}

type CustomerPhoneNumber {
  phoneNumber: String!
}

"Exactly one of the fields."
input CustomerIdentifierInput @oneOf {
  emailAddress: String
  id: ID
  phoneNumber: String
}

type CustomerConnection {
  edges: [CustomerEdge!]!
  nodes: [Customer!]!
  pageInfo: PageInfo!
}

type CustomerEdge {
  cursor: String!
  node: Customer!
}

type PageInfo {
  endCursor: String
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
}

enum CustomerSortKeys {
  CREATED_AT
  ID
  LOCATION
  NAME
  RELEVANCE
  UPDATED_AT
}

enum CustomerState {
  DECLINED
  DISABLED
  ENABLED
  INVITED
}

type CustomerEmailMarketingConsentState {
  consentUpdatedAt: DateTime
  marketingOptInLevel: CustomerMarketingOptInLevel
  marketingState: CustomerEmailMarketingState!
}

enum CustomerEmailMarketingState {
  NOT_SUBSCRIBED
  PENDING
  SUBSCRIBED
  UNSUBSCRIBED
  REDACTED
  INVALID
}

enum CustomerMarketingOptInLevel {
  SINGLE_OPT_IN
  CONFIRMED_OPT_IN
  UNKNOWN
}

type MailingAddress implements Node {
  address1: String
  address2: String
  city: String
  company: String
  country: String
  countryCodeV2: CountryCode
  firstName: String
  id: ID!
  lastName: String
  name: String
  phone: String
  provinceCode: String
  zip: String
}

"The countries our members live in; Shopify's enum has every ISO 3166 code."
enum CountryCode {
  AU
  CA
  CN
  DE
  FR
  GB
  HK
  KR
  SG
  TW
  US
  JP
}

type Metafield implements HasCompareDigest & LegacyInteroperability & Node {
  compareDigest: String!
  createdAt: DateTime!
  id: ID!
  jsonValue: JSON!
  key: String!
  legacyResourceId: UnsignedInt64!
  namespace: String!
  ownerType: MetafieldOwnerType!
  type: String!
  updatedAt: DateTime!
  value: String!
}

type MetafieldConnection {
  edges: [MetafieldEdge!]!
  nodes: [Metafield!]!
  pageInfo: PageInfo!
}

type MetafieldEdge {
  cursor: String!
  node: Metafield!
}

enum MetafieldOwnerType {
  CUSTOMER
}

input CustomerInput {
  addresses: [MailingAddressInput!]
    @deprecated(reason: "Use the dedicated address mutations (customerAddressCreate, customerAddressUpdate).")
  email: String
  firstName: String
  id: ID
  lastName: String
  locale: String
  metafields: [MetafieldInput!]
  note: String
  phone: String
  tags: [String!]
  emailMarketingConsent: CustomerEmailMarketingConsentInput
  taxExempt: Boolean
}

input MailingAddressInput {
  address1: String
  address2: String
  city: String
  company: String
  countryCode: CountryCode
  firstName: String
  lastName: String
  phone: String
  provinceCode: String
  zip: String
}

input MetafieldInput {
  id: ID
  namespace: String
  key: String
  value: String
  type: String
}

input CustomerEmailMarketingConsentInput {
  marketingOptInLevel: CustomerMarketingOptInLevel
  marketingState: CustomerEmailMarketingState!
  consentUpdatedAt: DateTime
}

input CustomerEmailMarketingConsentUpdateInput {
  customerId: ID!
  emailMarketingConsent: CustomerEmailMarketingConsentInput!
}

input MetafieldsSetInput {
  ownerId: ID!
  namespace: String
  key: String!
  value: String!
  compareDigest: String
  type: String
}

type CustomerCreatePayload {
  customer: Customer
  userErrors: [UserError!]!
}

type CustomerUpdatePayload {
  customer: Customer
  userErrors: [UserError!]!
}

input CustomerDeleteInput {
  id: ID!
}

type CustomerDeletePayload {
  deletedCustomerId: ID
  shop: Shop!
  userErrors: [UserError!]!
}

type CustomerAddressCreatePayload {
  address: MailingAddress
  userErrors: [UserError!]!
}

type CustomerAddressUpdatePayload {
  address: MailingAddress
  userErrors: [UserError!]!
}

type CustomerEmailMarketingConsentUpdatePayload {
  customer: Customer
  userErrors: [CustomerEmailMarketingConsentUpdateUserError!]!
}

type CustomerEmailMarketingConsentUpdateUserError implements DisplayableError {
  code: CustomerEmailMarketingConsentUpdateUserErrorCode
  field: [String!]
  message: String!
}

enum CustomerEmailMarketingConsentUpdateUserErrorCode {
  INCLUSION
  INTERNAL_ERROR
  INVALID
  MISSING_ARGUMENT
}

type MetafieldsSetPayload {
  metafields: [Metafield!]
  userErrors: [MetafieldsSetUserError!]!
}

type UserError implements DisplayableError {
  field: [String!]
  message: String!
}

"A subset of Shopify's: the sandbox stores the namespace, key, name, type and owner type."
input MetafieldDefinitionInput {
  description: String
  key: String!
  name: String!
  namespace: String
  ownerType: MetafieldOwnerType!
  pin: Boolean = false
  type: String!
}

type MetafieldDefinition implements Node {
  description: String
  id: ID!
  key: String!
  name: String!
  namespace: String!
  ownerType: MetafieldOwnerType!
  type: MetafieldDefinitionType!
}

type MetafieldDefinitionType {
  name: String!
}

type MetafieldDefinitionCreatePayload {
  createdDefinition: MetafieldDefinition
  userErrors: [MetafieldDefinitionCreateUserError!]!
}

type MetafieldDefinitionCreateUserError implements DisplayableError {
  code: MetafieldDefinitionCreateUserErrorCode
  elementIndex: Int
  elementKey: String
  field: [String!]
  message: String!
}

enum MetafieldDefinitionCreateUserErrorCode {
  BLANK
  INCLUSION
  INVALID
  INVALID_CHARACTER
  TAKEN
  TOO_LONG
  TOO_SHORT
}

type MetafieldsSetUserError implements DisplayableError {
  code: MetafieldsSetUserErrorCode
  elementIndex: Int
  field: [String!]
  message: String!
}

enum MetafieldsSetUserErrorCode {
  STALE_OBJECT
  INVALID_COMPARE_DIGEST
  INVALID_TYPE
  INVALID_VALUE
  APP_NOT_AUTHORIZED
  INCLUSION
  TAKEN
  PRESENT
  BLANK
  TOO_LONG
  TOO_SHORT
  LESS_THAN_OR_EQUAL_TO
  INTERNAL_ERROR
}

type BulkOperation implements Node {
  completedAt: DateTime
  createdAt: DateTime!
  errorCode: BulkOperationErrorCode
  fileSize: UnsignedInt64
  id: ID!
  objectCount: UnsignedInt64!
  partialDataUrl: URL
  query: String!
  rootObjectCount: UnsignedInt64!
  status: BulkOperationStatus!
  type: BulkOperationType!
  url: URL
}

enum BulkOperationStatus {
  CANCELED
  CANCELING
  COMPLETED
  CREATED
  EXPIRED
  FAILED
  RUNNING
}

enum BulkOperationErrorCode {
  ACCESS_DENIED
  INTERNAL_SERVER_ERROR
  TIMEOUT
}

enum BulkOperationType {
  QUERY
  MUTATION
}

type BulkOperationRunQueryPayload {
  bulkOperation: BulkOperation
  userErrors: [BulkOperationUserError!]!
}

type BulkOperationUserError implements DisplayableError {
  code: BulkOperationUserErrorCode
  field: [String!]
  message: String!
}

enum BulkOperationUserErrorCode {
  OPERATION_IN_PROGRESS
  INVALID
  LIMIT_REACHED
}
"""


def _serialize_unsigned_int64(value: object) -> str:
    # Shopify sends UnsignedInt64 as a string so JavaScript clients never lose precision.
    return str(value)


def build_admin_schema() -> GraphQLSchema:
    """Build the sandbox schema from ADMIN_SDL (resolvers are attached by sandbox.shopify.resolvers)."""
    schema = build_schema(ADMIN_SDL)
    unsigned = schema.get_type("UnsignedInt64")
    assert isinstance(unsigned, GraphQLScalarType)
    unsigned.serialize = _serialize_unsigned_int64  # type: ignore[method-assign]
    return schema

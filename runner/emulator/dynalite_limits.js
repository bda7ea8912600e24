// DynamoDB's documented limits that dynalite 4.0.0 does not enforce, patched in at start-up.
//
// Source of every number: the DynamoDB Developer Guide, "Constraints in Amazon DynamoDB"
// (Partition keys and sort keys, Naming rules, Items, Attributes, Expression parameters).
// dynalite already refuses out-of-range numbers, more than 38 digits, empty and duplicate
// sets, empty key strings and oversized ASCII items and keys. It measures strings in UTF-16
// code units where DynamoDB counts UTF-8 bytes, and it has no nesting, attribute-name or
// expression-size limits. This module closes those gaps by wrapping dynalite's exported
// validation functions (nothing in node_modules is edited); messages follow DynamoDB's
// where it is known. Loaded by runner/emulator/_dynamodb.py before dynalite itself.
//
// Checked after dynalite has parsed a request's expressions ("Expression parameters"): at most
// 300 operators or functions in any one expression, at most 100 operands to IN, document
// paths at most 32 levels deep. Checked on the item an update would store (Attributes,
// "Nested attribute depth"): 32 levels, however the update reached them (a SET on a deep
// path, a nested value). dynalite 4.0.0 enforces none of these; its own update path already
// refuses a result over 400 KB ("Item size to update has exceeded the maximum allowed size"),
// measured in UTF-8 through the itemSize below.
'use strict'

const path = require('path')

const MAX_NESTING = 32 // levels of nested attributes; the item is the first
const MAX_ATTRIBUTE_NAME_BYTES = 65535
const MAX_EXPRESSION_BYTES = 4096
const MAX_PLACEHOLDER_BYTES = 255
const MAX_HASH_KEY_BYTES = 2048
const MAX_RANGE_KEY_BYTES = 1024
const MAX_OPERATORS = 300 // operators or functions in any one expression
const MAX_IN_OPERANDS = 100 // operands to the right of IN
const MAX_PATH_LEVELS = 32 // elements of one document path: a.b[1] is 3
const PARSED_EXPRESSIONS = [
  [ '_condition', 'ConditionExpression' ], [ '_filter', 'FilterExpression' ],
  [ '_keyCondition', 'KeyConditionExpression' ], [ '_updates', 'UpdateExpression' ],
  [ '_projection', 'ProjectionExpression' ],
]
const EXPRESSIONS = [
  'ConditionExpression', 'UpdateExpression', 'ProjectionExpression', 'FilterExpression',
  'KeyConditionExpression',
]
const NESTING_MESSAGE = 'Nesting Levels have exceeded supported limits: ' +
  'Attributes in the item have nested levels beyond supported limit'
const ACTIONS = [
  'putItem', 'updateItem', 'deleteItem', 'getItem', 'scan', 'query', 'batchWriteItem',
  'batchGetItem',
]

const bytes = (text) => Buffer.byteLength(text, 'utf8')

// The nesting level of the deepest container in an attribute value (top-level value: 1).
// Stops at the limit, so a hostile depth never recurses further than MAX_NESTING.
function tooDeep (value, level) {
  if (value == null || typeof value != 'object') return false
  const children = value.M != null ? Object.values(value.M) : value.L != null ? value.L : null
  if (children == null) return false
  if (level >= MAX_NESTING) return true
  for (const child of children) {
    if (tooDeep(child, level + 1)) return true
  }
  return false
}

function attributeNameError (name, where) {
  const size = bytes(name)
  if (size == 0) {
    return 'One or more parameter values were invalid: ' +
      'An attribute name in ' + where + ' is empty; names must be at least one character long'
  }
  if (size > MAX_ATTRIBUTE_NAME_BYTES) {
    return 'One or more parameter values were invalid: An attribute name in ' + where +
      ' is ' + size + ' bytes; the limit is ' + MAX_ATTRIBUTE_NAME_BYTES + ' bytes'
  }
}

function attributesError (attributes, where) {
  if (attributes == null || typeof attributes != 'object') return
  for (const name of Object.keys(attributes)) {
    const error = attributeNameError(name, where)
    if (error) return error
    if (tooDeep(attributes[name], 1)) return NESTING_MESSAGE
  }
}

function limitsError (data) {
  for (const key of EXPRESSIONS) {
    if (typeof data[key] == 'string') {
      const size = bytes(data[key])
      if (size > MAX_EXPRESSION_BYTES) {
        return 'Invalid ' + key + ': Expression size has exceeded the maximum allowed size; ' +
          'expression size: ' + size
      }
    }
  }
  for (const key of [ 'ExpressionAttributeNames', 'ExpressionAttributeValues' ]) {
    const placeholders = data[key]
    if (placeholders == null || typeof placeholders != 'object') continue
    for (const placeholder of Object.keys(placeholders)) {
      if (bytes(placeholder) > MAX_PLACEHOLDER_BYTES) {
        return key + ' contains invalid key: placeholder exceeds ' + MAX_PLACEHOLDER_BYTES +
          ' bytes; key: "' + placeholder.slice(0, 64) + '..."'
      }
      const value = placeholders[placeholder]
      if (key == 'ExpressionAttributeNames' && typeof value == 'string') {
        const error = attributeNameError(value, key)
        if (error) return error
      }
      if (key == 'ExpressionAttributeValues' && tooDeep(value, 1)) return NESTING_MESSAGE
    }
  }
  let error = attributesError(data.Item, 'Item')
  if (error) return error
  const updates = data.AttributeUpdates
  if (updates != null && typeof updates == 'object') {
    for (const name of Object.keys(updates)) {
      error = attributeNameError(name, 'AttributeUpdates')
      if (error) return error
      if (updates[name] != null && tooDeep(updates[name].Value, 1)) return NESTING_MESSAGE
    }
  }
  for (const table of Object.keys(data.RequestItems || {})) {
    const requests = data.RequestItems[table]
    if (!Array.isArray(requests)) continue
    for (const request of requests) {
      error = request && request.PutRequest && attributesError(request.PutRequest.Item, 'Item')
      if (error) return error
    }
  }
}

// The expression limits on one parsed expression (dynalite's parse trees: a document path
// is an array of names and indexes, an operator or function is {type, args}, anything else
// is an attribute value), or DynamoDB's message for the first one broken. Messages as
// DynamoDB words them (aws/aws-sdk-js#3721, reapit/foundations#8255, scylladb's tests).
// What counts as an operator: every comparator, AND, OR, NOT, BETWEEN, IN, function and
// + or - ("a=:a AND b=:b contains three operators"); an update's SET/REMOVE/ADD/DELETE
// clauses themselves are not counted, so this never refuses what DynamoDB accepts.
function expressionError (parsed, name) {
  let operators = 0
  const pathError = (path) => path.length > MAX_PATH_LEVELS &&
    'Invalid ' + name + ': The document path has too many nesting levels; nesting levels: ' +
    path.length
  // Iterative, so the walk's cost is one visit per node however the expression nests.
  const pending = []
  if (parsed.expression != null) pending.push(parsed.expression)
  for (const path of parsed.paths || []) pending.push(path)
  for (const section of parsed.sections || []) {
    if (section.val != null && section.type == 'set') pending.push(section.val)
  }
  while (pending.length) {
    const node = pending.pop()
    if (Array.isArray(node)) {
      const error = pathError(node)
      if (error) return error
      continue
    }
    if (node == null || typeof node.type != 'string' || !Array.isArray(node.args)) continue
    operators += 1
    if (operators > MAX_OPERATORS) {
      return 'Invalid ' + name + ': The expression contains too many operators; ' +
        'operator count: ' + operators
    }
    if (node.type == 'in' && node.args.length - 1 > MAX_IN_OPERANDS) {
      return 'Invalid ' + name + ': The IN operator is provided with too many operands; ' +
        'number of operands: ' + (node.args.length - 1)
    }
    for (const arg of node.args) pending.push(arg)
  }
}

function parsedLimitsError (data) {
  for (const [ field, name ] of PARSED_EXPRESSIONS) {
    const parsed = data[field]
    const error = parsed != null && typeof parsed == 'object' && expressionError(parsed, name)
    if (error) return error
  }
  for (const table of Object.keys(data.RequestItems || {})) {
    const request = data.RequestItems[table]
    const parsed = request && request._projection
    const error = parsed != null && typeof parsed == 'object' &&
      expressionError(parsed, 'ProjectionExpression')
    if (error) return error
  }
}

// DynamoDB's item size, as dynalite computes it but with names and strings in UTF-8 bytes.
function valueSize (value) {
  const type = Object.keys(value)[0]
  const val = value[type]
  switch (type) {
  case 'S': return bytes(val)
  case 'SS': return val.reduce((sum, item) => sum + bytes(item), 0)
  case 'L': return 3 + val.reduce((sum, item) => sum + 1 + valueSize(item), 0)
  case 'M': return 3 + Object.keys(val).length + itemSize(val)
  default: return null // N, B, sets of them, BOOL, NULL: dynalite's own measure is right
  }
}

let dynaliteItemSize = null

function itemSize (item) {
  let size = 0
  for (const name of Object.keys(item)) {
    const own = valueSize(item[name])
    size += bytes(name) + (own == null ? dynaliteItemSize({ [name]: item[name] }) - name.length : own)
  }
  return size
}

function keySizeError (db, key, table, keySchema) {
  if (key == null || table == null) return
  for (const element of keySchema || table.KeySchema || []) {
    const value = key[element.AttributeName]
    if (value == null || typeof value.S != 'string') continue
    const isHash = element.KeyType == 'HASH'
    if (isHash && bytes(value.S) > MAX_HASH_KEY_BYTES) {
      return db.validationError('One or more parameter values were invalid: ' +
        'Size of hashkey has exceeded the maximum size limit of' + MAX_HASH_KEY_BYTES + ' bytes')
    }
    if (!isHash && bytes(value.S) > MAX_RANGE_KEY_BYTES) {
      return db.validationError('One or more parameter values were invalid: ' +
        'Aggregated size of all range keys has exceeded the size limit of ' +
        MAX_RANGE_KEY_BYTES + ' bytes')
    }
  }
}

module.exports = function enforceDynamoDBLimits (dynaliteDir) {
  const db = require(path.join(dynaliteDir, 'db'))

  dynaliteItemSize = db.itemSize
  // Only the plain form: the compressed one sizes scan and query pages, not the limit.
  db.itemSize = (item, compress, addMetaSize, rangeKey) =>
    compress || addMetaSize ? dynaliteItemSize(item, compress, addMetaSize, rangeKey) : itemSize(item)

  const validateItem = db.validateItem
  db.validateItem = (item, table) =>
    validateItem(item, table) || keySizeError(db, item, table, null)
  const validateKey = db.validateKey
  db.validateKey = (key, table, keySchema) =>
    validateKey(key, table, keySchema) || keySizeError(db, key, table, keySchema)

  for (const action of ACTIONS) {
    const validation = require(path.join(dynaliteDir, 'validations', action))
    const custom = validation.custom
    // dynalite's own checks parse the expressions; the parsed limits are checked after them.
    validation.custom = (data, store) =>
      limitsError(data) || (custom && custom(data, store)) || parsedLimitsError(data)
  }

  // Every write passes the item it is about to store through updateIndexes just before the
  // put: the one place an update's result (old item plus SET, ADD, AttributeUpdates) is
  // whole. PutItem's items were checked on the way in; an update's are checked only here.
  const updateIndexes = db.updateIndexes
  db.updateIndexes = (store, table, existingItem, item, cb) => {
    for (const name of Object.keys(item || {})) {
      if (tooDeep(item[name], 1)) return cb(db.validationError(NESTING_MESSAGE))
    }
    return updateIndexes(store, table, existingItem, item, cb)
  }
}

package schema

import "entgo.io/ent/dialect"

// precise is the column type for every timestamp: MySQL's default TIMESTAMP
// keeps whole seconds only and ends in 2038, which is too coarse for ordering
// token issuance against password changes and too short for expiry dates.
var precise = map[string]string{dialect.MySQL: "datetime(6)"}

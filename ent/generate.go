// Package ent holds the data model of idp: the schema under ent/schema and the
// code generated from it. Regenerate with `go generate ./...` after editing a
// schema file and commit the result.
package ent

//go:generate go run -mod=mod entgo.io/ent/cmd/ent generate --feature sql/upsert,sql/execquery,sql/modifier ./schema

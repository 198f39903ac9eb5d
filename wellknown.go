// Package idp holds the documents idp serves as written, embedded in the
// binary: the static part of its well-known metadata.
package idp

import "embed"

// WellKnown holds .well-known/openid-configuration.json: the discovery
// metadata (OpenID Connect Discovery 1.0, RFC 8414) with "issuer" empty and
// every endpoint as a path. The server fills in the issuer and makes the
// paths absolute against it, so the document never disagrees with the
// configured issuer, and adds grant_types_supported and scopes_supported
// from the token service's registry (package oauth), so that what is
// advertised is what the token endpoint and client registration accept.
//
//go:embed .well-known/openid-configuration.json
var WellKnown embed.FS

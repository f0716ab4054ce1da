// Package config reads, checks and writes ringway's config file.
//
// A node's configuration is one YAML file (docs/config.md is the reference;
// DESIGN.md "Config file" is the contract). Parse walks the yaml.Node tree
// itself instead of unmarshalling into structs, so that it can:
//
//   - reject unknown keys (suggesting the closest known one) and wrong
//     types, with file:line:column for each;
//   - remember where every value came from (source.pos) so the semantic
//     checks in validate.go can point at the line of, say, a VIP that
//     collides with a primary address;
//   - collect every problem in one pass and return them together as
//     Errors, one "file:line: message" per line.
//
// Data flow: Load/Parse → decoder (decode.go: YAML → Config over
// DefaultConfig, positions, expanded VIP ranges) → resolvePaths →
// resolveFilter (filter.go: subnet names in filter rules → their prefixes)
// → validate (validate.go, filtervalidate.go) → *Config. Marshal (encode.go) goes back to YAML, leaving
// out defaults. Import (import.go) converts the patent's nodemap.cfg,
// vip.cfg and localmonitor.cfg into a Config and marshals it.
//
// The daemon uses the helpers in lookup.go: node indexes are 1-based
// positions in the node map (docs/internals.md), subnet indexes are 0-based
// positions in Subnets, and AllVIPs gives every VIP with its policy in one
// deterministic order.
//
// Ring timer defaults live in one block in defaults.go.
package config

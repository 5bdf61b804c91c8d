// Package schemas is WaddleBot's public wire contract: the JSON envelopes that
// cross NATS, the subject grammar, the reversible encoding of subject tokens and
// the deterministic ids that let JetStream's duplicate window drop retries.
//
// Outside code (external modules, the nats CLI) needs nothing but this
// package's JSON Schema files and the README to take part in the pipeline.
package schemas

//go:generate go test ./jsonschemas -run TestSchemasMatchGoTypes -update

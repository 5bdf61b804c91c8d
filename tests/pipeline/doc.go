// Package pipeline holds in-process integration tests of the whole pipeline:
// a collector publishes an event, the router routes it, a module worker
// handles the invocation and commits its outbox, and the console sender
// delivers the reply. Every part runs on a NATS connection of its own against
// an embedded JetStream server with file storage and a throw-away PostgreSQL
// database, wired the way cmd/waddlebot wires them, with short back-offs and
// a small failure limit so the delivery rules of design §3 show in seconds.
//
// The tests live in the _test.go files; this package has no other code.
package pipeline

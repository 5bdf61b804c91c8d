package natsauth

import (
	"fmt"

	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// inbox is where request replies (JetStream API answers, publish acks, KV
// reads) come back.
const inbox = "_INBOX.>"

// ExternalInvokeSubject is where the relay hands an external NATS module its
// invocations over core NATS. The module never touches JetStream: the relay
// owns the durable consumer on wb.cmd.<module>, so retries, deadlines and
// dead letters work as for built-in modules and the module needs no rights
// on the stream API.
func ExternalInvokeSubject(module string) string { return "wb.ext." + module + ".invoke" }

// ExternalModulePermissions is all an external NATS module may do: hear its
// own invocations and publish its results.
func ExternalModulePermissions(module string) Permissions {
	return Permissions{
		Sub: []string{ExternalInvokeSubject(module)},
		Pub: []string{schemas.ResultSubject(module)},
	}
}

// AdminPermissions may do anything in the account: creating and changing
// streams (`waddlebot streams apply`), the dlq tools, the benchmark.
func AdminPermissions() Permissions {
	return Permissions{Pub: []string{">"}, Sub: []string{">"}}
}

// basics every part needs: JetStream account info, stream checks
// (streams.Verify), the inbox, configuration-change notices.
func basics() Permissions {
	var p Permissions
	p.pub("$JS.API.INFO", "$JS.API.STREAM.INFO.*")
	p.sub(inbox, schemas.SubjectControl+".>")
	return p
}

// consumer grants a durable pull consumer's lifecycle, fetches and acks.
func (p *Permissions) consumer(stream, durable string) {
	p.pub(
		"$JS.API.CONSUMER.CREATE."+stream+"."+durable,
		"$JS.API.CONSUMER.CREATE."+stream+"."+durable+".>",
		"$JS.API.CONSUMER.DURABLE.CREATE."+stream+"."+durable,
		"$JS.API.CONSUMER.INFO."+stream+"."+durable,
		"$JS.API.CONSUMER.MSG.NEXT."+stream+"."+durable,
		"$JS.ACK."+stream+"."+durable+".>",
		// The consume loop dead-letters what it gives up on.
		schemas.DLQSubject(stream),
	)
}

// kv grants reading and writing one bucket (watchers included).
func (p *Permissions) kv(bucket string) {
	s := "KV_" + bucket
	p.pub(
		"$KV."+bucket+".>",
		"$JS.API.STREAM.INFO."+s,
		"$JS.API.STREAM.MSG.GET."+s,
		"$JS.API.DIRECT.GET."+s,
		"$JS.API.DIRECT.GET."+s+".>",
		"$JS.API.CONSUMER.CREATE."+s,
		"$JS.API.CONSUMER.CREATE."+s+".>",
		"$JS.API.CONSUMER.DELETE."+s+".>",
		"$JS.FC."+s+".>",
	)
}

// RouterPermissions: events in, invocations out, limits in KV.
func RouterPermissions() Permissions {
	p := basics()
	p.consumer(schemas.StreamEvents, streams.ConsumerRouter)
	// Only invocations: the router never answers in chat itself nor makes
	// wb.api lookups (scopes_part_test shows it refused both).
	p.pub(schemas.SubjectCommands + ".>")
	p.kv(streams.BucketCooldowns)
	p.kv(streams.BucketWindows)
	p.kv(streams.BucketFailures)
	p.kv(streams.BucketHeartbeats)
	return p
}

// CollectorPermissions: a platform's events out, its replies in, its
// lookups served, its leases and send budgets.
func CollectorPermissions(platform string) Permissions {
	p := basics()
	p.pub(schemas.SubjectEvents + "." + platform + ".>")
	p.consumer(schemas.StreamReplies, streams.SenderConsumer(platform))
	p.sub("wb.api." + platform + ".>")
	// Answering a lookup publishes to the asker's inbox, which no
	// publish right covers.
	p.Responses = true
	p.kv(streams.BucketLeases)
	p.kv(streams.BucketWindows)
	p.kv(streams.BucketFailures)
	p.kv(streams.BucketInteractions)
	return p
}

// ActionPermissions: a built-in module's invocations in; replies, overlay
// items and control notices out.
func ActionPermissions(module string) Permissions {
	p := basics()
	p.consumer(schemas.StreamCommands, module)
	p.pub(schemas.SubjectReplies+".>", schemas.SubjectOverlay+".>", schemas.SubjectControl+".>", "wb.api.>")
	p.kv(streams.BucketHeartbeats)
	p.kv(streams.BucketFailures)
	if module == "ai" {
		p.kv(streams.BucketAIMemory)
	}
	return p
}

// RelayPermissions: the external modules' invocations in (one durable per
// module, created as modules are added), handed over core NATS; their
// results in, replies out.
func RelayPermissions() Permissions {
	p := basics()
	p.pub(
		"$JS.API.CONSUMER.CREATE."+schemas.StreamCommands+".>",
		"$JS.API.CONSUMER.DURABLE.CREATE."+schemas.StreamCommands+".*",
		"$JS.API.CONSUMER.INFO."+schemas.StreamCommands+".*",
		"$JS.API.CONSUMER.MSG.NEXT."+schemas.StreamCommands+".*",
		"$JS.ACK."+schemas.StreamCommands+".>",
		schemas.DLQSubject(schemas.StreamCommands),
		"wb.ext.*.invoke",
		schemas.SubjectReplies+".>", schemas.SubjectOverlay+".>",
	)
	p.consumer(schemas.StreamResults, streams.ConsumerRelay)
	p.kv(streams.BucketFailures)
	p.kv(streams.BucketHeartbeats)
	return p
}

// PortalPermissions: control notices out, overlays read for browser
// sources, heartbeats read for the modules page.
func PortalPermissions() Permissions {
	p := basics()
	p.pub(schemas.SubjectControl+".>",
		"$JS.API.CONSUMER.CREATE."+schemas.StreamOverlay,
		"$JS.API.CONSUMER.CREATE."+schemas.StreamOverlay+".>",
		"$JS.API.CONSUMER.DELETE."+schemas.StreamOverlay+".>",
		// Ordered consumers pull: without this a browser-source socket
		// never gets a message.
		"$JS.API.CONSUMER.MSG.NEXT."+schemas.StreamOverlay+".*",
		// A ticker or now-playing page opens on the latest item.
		"$JS.API.STREAM.MSG.GET."+schemas.StreamOverlay,
		"$JS.API.DIRECT.GET."+schemas.StreamOverlay,
		"$JS.API.DIRECT.GET."+schemas.StreamOverlay+".>",
		"$JS.FC."+schemas.StreamOverlay+".>",
	)
	p.kv(streams.BucketHeartbeats)
	return p
}

// MintExternalModule issues an external NATS module's credentials: what the
// portal and `waddlebot external mint` hand to the module's author.
func (s *Setup) MintExternalModule(module string) ([]byte, error) {
	if !partName.MatchString(module) {
		return nil, fmt.Errorf("natsauth: module name %q is not a subject token", module)
	}
	return s.MintUser("external-"+module, ExternalModulePermissions(module))
}

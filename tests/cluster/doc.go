// Package cluster holds the cluster behaviour tests (issue 10): the pipeline
// on a three-node embedded JetStream cluster with Replicas: 3 streams,
// losing a stream leader, a router replica, a worker replica or PostgreSQL
// under load, and losing no event and answering none twice.
package cluster

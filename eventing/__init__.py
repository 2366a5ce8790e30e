"""Events: the CloudEvent catalogue, publishers, the local broker and Knative Broker/Trigger rendering."""

"""Tasks that talk to message buses (Redis, MQTT, AMQP, NATS): publish, so one flow can feed another's
trigger, and consume. Each module imports its client library only when a task runs."""

"""All a client of the daemon needs and nothing heavy: the wire messages (messages), the control
requests and replies (control), the default endpoints (endpoints) and the JSON Schema
(captions.schema.json). Imports only the standard library and npustream.types/errors."""

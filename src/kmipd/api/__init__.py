"""The HTTPS API on one port: management, Key Protect-compatible root keys, IAM tokens, health."""

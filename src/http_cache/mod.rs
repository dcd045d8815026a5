//! HTTP caching semantics for a shared cache (RFC 9111, RFC 9211, RFC 9213, RFC 5861).

"""HTTP/1.1 over the stack's byte stream, via h11."""

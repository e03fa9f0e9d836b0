"""The built-in lab: network namespaces, servers, impairments."""

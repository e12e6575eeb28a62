"""HTTP routes. Thin: validate, call the kernel manager, shape the response."""

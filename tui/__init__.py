"""The Textual front end. It holds no business logic: it drives a KernelClient."""

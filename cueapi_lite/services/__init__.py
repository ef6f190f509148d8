"""Services: one per resource. They validate, decide and call the store; routes only
parse HTTP and render. Every failure is raised as an `ApiError` (errors.py)."""

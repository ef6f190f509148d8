"""HTTP routes, one module per resource. Routes parse, call a service and render; they
never run SQL and never read the clock."""

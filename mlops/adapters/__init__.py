"""The only place where a dependency's private or legacy API is imported: one module per library.

Each module names the version it was written against and has a test in
tests/adapters/ that fails, naming the API, when an upgrade moves it.
"""

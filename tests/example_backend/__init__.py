"""A store written as a third party would, and the factory that runs the conformance suite on it.

    llmgine-conformance --store example_backend.backend:make

(with ``tests/`` on ``PYTHONPATH``). See CONTRIBUTING.md, "Run the conformance
suite against your backend".
"""

from example_backend.filestore import FileStore

__all__ = ["FileStore"]

"""The Kubernetes layer both components build on: the API client and its errors, list/watch,
leader election on a Lease, and the work queue.  It knows nothing of previews (that is
foundation.contract, above it only in the sense that broker and controller use both).
"""

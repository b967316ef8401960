"""The embedded local stack: generated credentials, a durable KMS stand-in, store bootstrap.

None of this runs against AWS; it exists so the local stack behaves like S3 + KMS.
"""

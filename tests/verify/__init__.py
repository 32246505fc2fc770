"""Tests of authsvc.verify, the downstream token verifier, against a fake issuer."""

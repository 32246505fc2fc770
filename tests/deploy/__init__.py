"""Offline proofs of what operators deploy with: the Dockerfile, deploy/compose.yaml, deploy/k8s."""

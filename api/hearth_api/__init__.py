"""Hearth's contract in code: the ModelDeployment types, the annotation and label names, the
condition reasons and the time helpers the operator, the router and the simulator share, and
the generator of the CRD made from those types. Pure: pydantic and the standard library only,
except `connect`, the one way any Hearth process reaches the Kubernetes API."""

"""The simulated homelab: a model engine, a Kubernetes API on loopback, a kubelet simulator."""

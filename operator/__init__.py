"""lbaas-operator: load balancers as Kubernetes resources, on any vendor's device."""

GROUP = "lbaas.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

__version__ = "0.1.0"

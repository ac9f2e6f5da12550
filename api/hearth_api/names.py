"""The names on the wire: the resource's group/version/kind, and the annotations and labels the
parts of Hearth read and write on each other's objects (docs/architecture.md: one writer per
thing)."""

from __future__ import annotations

GROUP = "hearth.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ("md",)

# Annotations the router writes on the CR; the operator reads them.
WAKE_REQUESTED_AT = "hearth.dev/wake-requested-at"
LAST_ACTIVITY = "hearth.dev/last-activity"
# Written by the router when a user asks to unload a model (the dashboard's "Unload"): the
# operator scales it to zero unless a wake or activity is newer.
SLEEP_REQUESTED_AT = "hearth.dev/sleep-requested-at"

# Labels the operator puts on the Deployment, Service and Pods it owns for a ModelDeployment.
MD_LABEL = "hearth.dev/model-deployment"
MODEL_LABEL = "hearth.dev/model"

# Labels a GPU node carries: Hearth's own, else NVIDIA GPU feature discovery's.
GPU_CLASS_LABEL = "hearth.dev/gpu-class"
GPU_VRAM_LABEL = "hearth.dev/gpu-vram-gib"
NVIDIA_PRODUCT_LABEL = "nvidia.com/gpu.product"  # `-SHARED` appended under time-slicing
NVIDIA_MEMORY_LABEL = "nvidia.com/gpu.memory"  # MiB per card
NVIDIA_COUNT_LABEL = "nvidia.com/gpu.count"  # physical cards
NVIDIA_REPLICAS_LABEL = "nvidia.com/gpu.replicas"  # time-slicing replicas per card
NVIDIA_GPU_RESOURCE = "nvidia.com/gpu"

# Labels and annotations of the Job (and its Pods) that downloads a model's weights into the
# cache: which ModelDeployment it serves and which source it fetches.
WEIGHTS_LABEL = "hearth.dev/weights-for"
SOURCE_ANNOTATION = "hearth.dev/source"

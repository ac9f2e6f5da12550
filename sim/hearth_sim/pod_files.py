"""What a kubelet hands a container beyond its image: env values resolved from Secrets,
ConfigMaps and the pod's own fields (a Service's DNS name as the address that reaches it), and
its volumes as folders on the node — claims, host paths, emptyDirs, Secrets and ConfigMaps as
files, the ServiceAccount's token and CA."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hearth_sim import podman
from hearth_sim.kube import ApiError, Kube
from hearth_sim.pod_spec import volume_folder
from hearth_sim.services import ServiceProxy

Obj = dict[str, Any]


@dataclass(frozen=True)
class ApiEndpoint:
    """The API server as pods reach it: https on host:port, its CA (KUBERNETES_SERVICE_*)."""

    host: str
    port: int
    ca_pem: str


def field_value(pod: Obj, ip: str, path: str) -> str | None:
    """A `fieldRef`'s value: the pod's name, namespace, IP, node or ServiceAccount."""
    meta, spec = pod["metadata"], pod["spec"]
    fields = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "status.podIP": ip,
        "status.hostIP": ip,
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
    }
    value = fields.get(path)
    return None if value is None else str(value)


def write_files(folder: Path, data: dict[str, bytes], items: list[Obj] | None, mode: int) -> None:
    """A Secret's or ConfigMap's keys as files (only `items`, renamed, when given)."""
    folder.mkdir(parents=True, exist_ok=True)
    chosen = {str(i["key"]): str(i.get("path", i["key"])) for i in items} if items else {k: k for k in data}
    for key, name in chosen.items():
        if key in data:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data[key])
            target.chmod(mode)


class PodFiles:
    """One pod's env values and volume folders, read from the API as its kubelet reads them."""

    def __init__(
        self,
        kube: Kube,
        pod: Obj,
        ip: str,
        pod_dir: Path,
        volumes_dir: Path | None,
        api: ApiEndpoint | None = None,
        services: ServiceProxy | None = None,
    ) -> None:
        self.kube, self.pod, self.ip = kube, pod, ip
        self.services = services  # where a Service an env value names is reached (no cluster DNS here)
        self.ns = pod["metadata"]["namespace"]
        self.pod_dir, self.volumes_dir, self.api = pod_dir, volumes_dir, api

    # --- env ------------------------------------------------------------------------------------

    def service_env(self) -> dict[str, str]:
        """Where the API server is, as a kubelet tells every container (in-cluster config)."""
        if self.api is None:
            return {}
        return {"KUBERNETES_SERVICE_HOST": self.api.host, "KUBERNETES_SERVICE_PORT": str(self.api.port)}

    async def env(self, container: Obj, localize: Callable[[str], str]) -> dict[str, str]:
        """The container's own env: `value`s (through `localize`), `valueFrom` Secret and
        ConfigMap keys and pod fields; an optional key that is missing is left out."""
        env: dict[str, str] = {}
        for item in container.get("env") or []:
            value = await self.env_value(item, localize)
            if value is not None:
                env[item["name"]] = value
        return env

    async def env_value(self, item: Obj, localize: Callable[[str], str]) -> str | None:
        if "value" in item:
            value = localize(str(item["value"]))
            return await self.services.resolve(value) if self.services is not None else value
        source = item.get("valueFrom") or {}
        if "secretKeyRef" in source:
            return await self._key("secrets", source["secretKeyRef"])
        if "configMapKeyRef" in source:
            return await self._key("configmaps", source["configMapKeyRef"])
        if "fieldRef" in source:
            return field_value(self.pod, self.ip, source["fieldRef"].get("fieldPath", ""))
        return None

    async def _key(self, plural: str, ref: Obj) -> str | None:
        """One key of a Secret or ConfigMap, as text; None when either is missing."""
        data = await self._data(plural, ref["name"])
        raw = (data or {}).get(ref.get("key", ""))
        return None if raw is None else raw.decode()

    async def _data(self, plural: str, name: str) -> dict[str, bytes] | None:
        """A Secret's or ConfigMap's keys as bytes; None when it does not exist."""
        try:
            obj = await self.kube.get("v1", plural, self.ns, name)
        except ApiError:
            return None
        if plural == "secrets":
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            data.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
            return data
        data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return data

    # --- the ServiceAccount's token -------------------------------------------------------------

    async def token(self, account: str) -> str:
        """The ServiceAccount's token, waiting for the account to exist: a manifest file may list
        the Deployment before its ServiceAccount, and a real cluster retries such a pod until the
        account is there (its admission refuses the pod meanwhile)."""
        delay = 0.1
        for _ in range(60):
            try:
                return await self.kube.request_token(self.ns, account)
            except ApiError as exc:
                if exc.code != 404:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        return await self.kube.request_token(self.ns, account)

    # --- volumes --------------------------------------------------------------------------------

    async def mounts(self, container: Obj, termination_log: Path) -> list[podman.Mount]:
        """Every volumeMount of the container as a folder on the node, the ServiceAccount's
        token and CA at the standard path (unless the pod opts out), the termination log."""
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes") or []}
        out: list[podman.Mount] = []
        for m in container.get("volumeMounts") or []:
            volume = volumes.get(m.get("name", ""))
            if volume is None:
                raise podman.CannotCreate(f'volumeMount "{m.get("name")}" names no volume of the pod')
            folder = await self._folder(volume)
            if m.get("subPath"):
                folder = folder / m["subPath"]
                folder.mkdir(parents=True, exist_ok=True)
            # Secret and ConfigMap volumes are read-only whatever the mount says.
            read_only = bool(m.get("readOnly")) or "secret" in volume or "configMap" in volume
            out.append(podman.Mount(str(folder), m["mountPath"], read_only))
        mounted = {m.path.rstrip("/") for m in out}
        if self.pod["spec"].get("automountServiceAccountToken") is not False and (
            podman.SERVICE_ACCOUNT_DIR not in mounted
        ):
            out.append(podman.Mount(str(await self._service_account()), podman.SERVICE_ACCOUNT_DIR, True))
        path = str(container.get("terminationMessagePath", "/dev/termination-log"))
        out.append(podman.Mount(str(termination_log), path, False))
        return out

    async def _folder(self, volume: Obj) -> Path:
        name = str(volume["name"])
        folder = volume_folder(volume, self.volumes_dir, self.pod_dir)
        if folder is None and (volume.get("persistentVolumeClaim") or volume.get("hostPath")):
            raise podman.CannotCreate(f'volume "{name}": this homelab has no volumes')
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            if not volume.get("hostPath"):  # DirectoryOrCreate makes a host path 0755, root's
                # A claim's folder as k3s's local-path provisioner makes it; an emptyDir's too.
                folder.chmod(0o777)
            return folder
        folder = self.pod_dir / "volumes" / name
        for kind, plural, key in (("secret", "secrets", "secretName"), ("configMap", "configmaps", "name")):
            if kind in volume:
                source = volume[kind]
                data = await self._data(plural, str(source.get(key)))
                if data is None and not source.get("optional"):
                    raise podman.CannotCreate(f'{kind} "{source.get(key)}" not found')
                write_files(folder, data or {}, source.get("items"), int(source.get("defaultMode", 0o644)))
                folder.chmod(0o755)
                return folder
        raise podman.CannotCreate(
            f'volume "{name}": only persistentVolumeClaim, hostPath, emptyDir, secret and configMap '
            "volumes are mounted here"
        )

    async def _service_account(self) -> Path:
        """The token, CA and namespace a kubelet projects at the standard path."""
        account = self.pod["spec"].get("serviceAccountName") or "default"
        folder = self.pod_dir / "serviceaccount"
        folder.mkdir(parents=True, exist_ok=True)
        files = {"token": await self.token(account), "namespace": self.ns}
        if self.api is not None:
            files["ca.crt"] = self.api.ca_pem
        for name, text in files.items():
            (folder / name).write_text(text)
            (folder / name).chmod(0o644)
        folder.chmod(0o755)
        with contextlib.suppress(OSError):
            self.pod_dir.chmod(0o755)
        return folder

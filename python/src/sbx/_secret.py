"""``Secret``: a value from the server's secret store, injected as an environment variable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ._proto import sandbox_pb2

# The store a Secret names when the caller gives none (the W&B SDK's default is
# "wandb-team-secrets"; sbx's secret stores are directories named by the operator).
DEFAULT_STORE = "default"


@dataclass(frozen=True, kw_only=True)
class Secret:
    """``Secret(name="HF_TOKEN")`` injects the secret ``HF_TOKEN`` as ``$HF_TOKEN``.

    ``store`` names the server's secret store (default ``"default"``), ``field`` selects one field
    of a structured (JSON) secret, ``env_var`` renames the variable. The server resolves the value;
    it never passes through the SDK.
    """

    store: str = DEFAULT_STORE
    name: str
    field: str = ""
    env_var: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("Secret.name must be a non-empty string")
        if not isinstance(self.store, str) or not self.store:
            raise ValueError("Secret.store must be a non-empty string")
        if self.env_var is None:
            object.__setattr__(self, "env_var", self.name)
        elif not isinstance(self.env_var, str) or not self.env_var:
            raise ValueError("Secret.env_var must be a non-empty string")


def _coerce(value: Secret | Mapping[str, Any]) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, Mapping):
        return Secret(**value)
    raise TypeError(f"secrets must be Secret or dict, not {type(value).__name__}")


def merge_secrets(*groups: Iterable[Secret | Mapping[str, Any]] | None) -> tuple[Secret, ...]:
    """Concatenates secret lists; identical duplicates collapse, two different secrets for the
    same environment variable are an error."""
    by_env: dict[str, Secret] = {}
    ordered: list[Secret] = []
    for group in groups:
        if group is None:
            continue
        if isinstance(group, (str, bytes, Mapping)):
            raise TypeError("secrets must be a list of Secret")
        for item in group:
            secret = _coerce(item)
            existing = by_env.get(secret.env_var)  # type: ignore[arg-type]
            if existing is not None:
                if existing != secret:
                    raise ValueError(f"Conflicting secrets for env_var {secret.env_var!r}")
                continue
            by_env[secret.env_var] = secret  # type: ignore[index]
            ordered.append(secret)
    return tuple(ordered)


def secrets_to_proto(secrets: Iterable[Secret]) -> list[sandbox_pb2.SecretStoreReference]:
    stores: dict[str, sandbox_pb2.SecretStoreReference] = {}
    for secret in secrets:
        store = secret.store
        ref = stores.get(store)
        if ref is None:
            ref = stores[store] = sandbox_pb2.SecretStoreReference(store_name=store)
        ref.secrets.append(
            sandbox_pb2.SecretMapping(path=secret.name, field=secret.field, env_var=secret.env_var)
        )
    return list(stores.values())


@dataclass(frozen=True, kw_only=True)
class ImagePullCredentials:
    """Credentials for a private registry: the secret ``name`` (its ``field``, for a structured
    secret) of the server's store ``store``, used to pull images from ``registry``.

    Hosted product only: sbx pulls from the registries (and mirrors) its operator configured, and
    refuses a sandbox that asks for these credentials.
    """

    registry: str
    store: str
    name: str
    field: str = ""

    def __post_init__(self) -> None:
        for attr in ("registry", "store", "name"):
            value = getattr(self, attr)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"ImagePullCredentials.{attr} must be a non-empty string")
        if not isinstance(self.field, str):
            raise TypeError("ImagePullCredentials.field must be a string")


def normalize_pull_credentials(value: Any) -> ImagePullCredentials | None:
    if value is None or isinstance(value, ImagePullCredentials):
        return value
    if isinstance(value, Mapping):
        return ImagePullCredentials(**value)
    raise TypeError(
        f"image_pull_credentials must be ImagePullCredentials or a dict, not {type(value).__name__}"
    )

"""The MLflow Model Registry and run inputs endpoints of ``MlflowRest`` (artifacts of type ``model`` become
registered model versions; the artifacts a run used become its dataset inputs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tracker_jupyter.online.rest.batch import key_values
from tracker_jupyter.online.rest.errors import Refusal
from tracker_jupyter.online.rest.transport import Transport
from tracker_jupyter.online.rest.values import NO_RETRY, JsonObject


class RegistryEndpoints(Transport):
    def create_registered_model(self, name: str, description: str | None = None) -> None:
        """Create the registered model ``name``; one that exists already is fine."""
        body: JsonObject = {"name": name}
        if description:
            body["description"] = description
        self._call("POST", "registered-models/create", body=body, what=f"create registered model {name!r}",
                   tolerate=("RESOURCE_ALREADY_EXISTS",))  # fmt: skip

    def search_model_versions(self, filter_string: str, max_results: int = 1000) -> list[JsonObject]:
        result = self._request_json(
            "GET", "model-versions/search", params={"filter": filter_string, "max_results": max_results},
            what="search model versions",
        )  # fmt: skip
        return list(result.get("model_versions", []))

    def create_model_version(
        self, name: str, source: str, run_id: str, tags: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> JsonObject:  # fmt: skip
        """A new version of the registered model ``name`` made of the run's files at ``source``."""
        body: JsonObject = {"name": name, "source": source, "run_id": run_id, "tags": key_values(tags)}
        if description:
            body["description"] = description
        result = self._request_json("POST", "model-versions/create", body=body,
                                    what=f"create a version of model {name!r}", retry=NO_RETRY)  # fmt: skip
        version: JsonObject = result["model_version"]
        return version

    def set_model_alias(self, name: str, alias: str, version: str) -> None:
        self._request_json("POST", "registered-models/alias", body={"name": name, "alias": alias, "version": version},
                           what=f"set alias {alias!r} of model {name!r}")  # fmt: skip

    def delete_model_alias(self, name: str, alias: str) -> None:
        self._call("DELETE", "registered-models/alias", params={"name": name, "alias": alias},
                   what=f"delete alias {alias!r} of model {name!r}", tolerate=("RESOURCE_DOES_NOT_EXIST",))  # fmt: skip

    def get_registered_model(self, name: str) -> JsonObject | None:
        result = self._call("GET", "registered-models/get", params={"name": name},
                            what=f"read registered model {name!r}", tolerate=("RESOURCE_DOES_NOT_EXIST",))  # fmt: skip
        return None if isinstance(result, Refusal) else result["registered_model"]

    def log_inputs(self, run_id: str, datasets: Sequence[JsonObject]) -> None:
        """Record datasets a run used (MLflow's ``runs/log-inputs``; its UI lists them with the run)."""
        self._request_json("POST", "runs/log-inputs", body={"run_id": run_id, "datasets": list(datasets)},
                           what="record the run's inputs")  # fmt: skip

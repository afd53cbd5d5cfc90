"""The surface around log(): login offline, the reference's Settings names, save() of a file in run.dir,
an artifact logged and (where the tracker can) used offline, define_metric. Prints what each call gave."""

import importlib
import json
import os

wandb = importlib.import_module(os.environ.get("COMPAT_TRACKER", "wandb"))
seen: dict[str, object] = {}


def observe(name, call):
    try:
        value = call()
        seen[name] = value if isinstance(value, (bool, int, float, str, type(None))) else type(value).__name__
    except Exception as exc:  # what the tracker refuses is part of the comparison
        seen[name] = f"raises {type(exc).__name__}"
        return None
    return value


observe("login() with no server", lambda: wandb.login())
settings = observe(
    "Settings(console, _disable_stats, init_timeout)",
    lambda: wandb.Settings(console="off", _disable_stats=True, init_timeout=30),
)
run = wandb.init(project="compat", mode="offline", dir=os.environ["COMPAT_DIR"], settings=settings)
seen["run.dir is absolute"] = os.path.isabs(run.dir)
with open(os.path.join(run.dir, "ckpt.pt"), "w") as fh:
    fh.write("weights")
observe("save(a file in run.dir)", lambda: wandb.save(os.path.join(run.dir, "ckpt.pt")) is not None)
with open("data.csv", "w") as fh:
    fh.write("x,y\n1,2\n")
artifact = wandb.Artifact("data", type="dataset")
artifact.add_file("data.csv")
logged = observe("log_artifact(aliases=['best'])", lambda: run.log_artifact(artifact, aliases=["best"]))
observe("logged artifact .wait().version", lambda: logged.wait().version)
observe("use_artifact('data:best') offline", lambda: run.use_artifact("data:best").name)
observe("define_metric('acc', summary='max')", lambda: wandb.define_metric("acc", summary="max") is not None)
for acc in (0.5, 0.9, 0.7):
    run.log({"acc": acc})
run.finish()
print("COMPAT " + json.dumps(seen))

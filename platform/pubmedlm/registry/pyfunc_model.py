"""MLflow models-from-code entry point of the task models (`serving.BlurbTaskModel`): MLflow
copies this file into each logged model and runs it on load, so no pickled object is stored."""

import mlflow.models

from pubmedlm.registry.serving import BlurbTaskModel

mlflow.models.set_model(BlurbTaskModel())

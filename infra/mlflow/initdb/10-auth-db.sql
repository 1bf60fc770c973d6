-- The basic-auth app keeps users and permissions in a database of its own.
CREATE DATABASE mlflow_auth OWNER mlflow;

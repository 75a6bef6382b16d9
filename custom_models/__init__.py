"""Your own models, outside the carbon_pipe package: in params.yaml, model.class: "custom_models.<module>:<Class>".

The train stages depend on this folder in dvc.yaml, so editing a model here reruns them.
"""

# Reviewed models only: no promotion without an input signature and a
# model card saying what the model is for and where it must not be used.
package modelwatch.gate

deny contains "the version has no signature: log the model with a signature or an input example, or declare metadata.signature" if {
	not input.metadata.signature
}

deny contains msg if {
	some section in ["intended_use", "limitations"]
	object.get(object.get(input.metadata, "model_card", {}), section, "") == ""
	msg := sprintf("the model card has no %s: set metadata.model_card.%s (modelwatch versions update --model-card FILE)", [section, section])
}

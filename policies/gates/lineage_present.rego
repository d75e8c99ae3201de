# Lineage present: the version says what it was trained on (every training
# data reference with a digest) and from which code commit.
package modelwatch.gate

deny contains "the lineage names no training data" if {
	count(object.get(input.lineage, "training_data", [])) == 0
}

deny contains msg if {
	some item in input.lineage.training_data
	not item.digest
	msg := sprintf("training data %q has no digest (pass URI@sha256:<hex>)", [item.uri])
}

deny contains "the lineage has no code commit" if {
	not input.lineage.code_commit
}

# Minimum evaluation metrics: each metric below must be recorded in the
# version's lineage (`lineage.metrics`, e.g. `modelwatch versions create
# --metric auc=0.91`) and reach its minimum.
package modelwatch.gate

minimums := {"auc": 0.80, "recall": 0.60}

deny contains msg if {
	some name, minimum in minimums
	not input.metrics[name]
	msg := sprintf("evaluation metric %q is missing from the lineage (needs at least %v)", [name, minimum])
}

deny contains msg if {
	some name, minimum in minimums
	value := input.metrics[name]
	value < minimum
	msg := sprintf("evaluation metric %q is %v, below the minimum %v", [name, value, minimum])
}

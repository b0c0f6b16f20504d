"""Training data: render rows through a chat template, locate typed spans, tokenize and label them.

The modules follow the pipeline: :mod:`templates` (what a chat template does), :mod:`render`
(one row to text plus spans), :mod:`spans`, :mod:`labels` (spans to token labels for a policy),
:mod:`prepare` (``prepare_data``), :mod:`dataset_labels` (labels that survive saving and packing)
and :mod:`mask` (``mask_data``).
"""

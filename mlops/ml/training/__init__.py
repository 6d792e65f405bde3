"""Fine-tuning a sequence classifier with the Hugging Face Trainer, as the train, distill and refit stages do.

The stages are thin: they read their paths and settings and call this library, so the three share one data
encoding, one set of Trainer arguments, one resume rule, one model directory layout and one answer to "is this
the process that writes". Modules: `processes` (the main process), `data` (splits and their encoding),
`metrics`, `arguments` (the Trainer's arguments), `checkpoints` (run keys and resuming), `callbacks` (the
progress line, early stopping), `trainer` (building and running it), `saving` (the model directory), `start`
(the base model or a champion to continue from), `refitting` (training again on more rows), `curves` (the
training-curves plot).
"""

"""Hearth's fetch: downloads a model's weights into the weights cache before the engine starts.

Run by the operator as a Job of Hearth's image (`hearth-fetch --uri …`); it reports its progress
on `GET /progress` for the operator to read, resumes a cut-short download where it stopped,
verifies sizes and checksums, and ends with one line naming why it failed when it does.
"""

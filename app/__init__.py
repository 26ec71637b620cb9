"""The HTTP service: routes, settings, job store, artifact storage and the queue client.

Never imports torch: the API process stays small and starts fast; the ML runs in worker/.
"""

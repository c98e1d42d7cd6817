"""facelm's HTTP server: the API (verify, describe, OpenAI-format chat), and the web page.

Start it with `facelm serve`, or build the app with `facelm.serve.app.create_app(ServeConfig())`.
Nothing here is imported until used: FastAPI and uvicorn load only when the server starts.
"""

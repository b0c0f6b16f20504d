from teich.cli import app

app(prog_name="teich")

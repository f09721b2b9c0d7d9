from privfin.cli.main import app

app(prog_name="privfin")

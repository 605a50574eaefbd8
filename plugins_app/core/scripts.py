"""Python and Node tasks: the shell machinery with another interpreter (a local process, or a container)."""

from __future__ import annotations

import secrets

from plugins_app.base import RunnablePlugin, prop

from .shell import OUTPUTS, Commands, ShellProperties, run_shell, script_job


class _InterpretedScript(RunnablePlugin):
    """A script in another language, written to a file and run by its interpreter found on PATH."""

    interpreter_command: str = ""  # the program, e.g. python3
    default_image: str = ""  # Kestra's containerImage default, for the Docker runner
    suffix: str = ""
    outputs = OUTPUTS

    class Properties(ShellProperties):
        script: str = prop(description="The script's text.", min_length=1)

    def run(self, props, ctx):
        name = f".tern-script-{secrets.token_hex(4)}{self.suffix}"  # our own name: nothing from the user
        return run_shell(
            script_job(
                props,
                ctx,
                [f"{self.interpreter_command} {name}"],
                scratch={name: props.script},
                default_image=self.default_image,
            ),
            ctx,
        )


class PythonCommands(Commands):
    """Run shell commands, typically `python …`, in a subprocess or a container (Kestra's Python Commands)."""

    type = "io.kestra.plugin.scripts.python.Commands"
    aliases = ()
    default_image = "python"
    example = """
- id: report
  type: io.kestra.plugin.scripts.python.Commands
  beforeCommands:
    - echo preparing
  commands:
    - python3 -c 'print("::{\\"outputs\\":{\\"ok\\":true}}::")'
"""


class PythonScript(_InterpretedScript):
    """Run an inline Python script with `python3` from PATH (or the container's); print `::{"outputs":{...}}::` to set outputs."""

    type = "io.kestra.plugin.scripts.python.Script"
    interpreter_command = "python3"
    default_image = "python"
    suffix = ".py"
    example = """
- id: compute
  type: io.kestra.plugin.scripts.python.Script
  script: |
    import json
    print("::" + json.dumps({"outputs": {"answer": 6 * 7}}) + "::")
"""


class NodeCommands(Commands):
    """Run shell commands, typically `node …`, in a subprocess or a container (Kestra's Node Commands)."""

    type = "io.kestra.plugin.scripts.node.Commands"
    aliases = ()
    default_image = "node"
    example = """
- id: build
  type: io.kestra.plugin.scripts.node.Commands
  commands:
    - node --version
"""


class NodeScript(_InterpretedScript):
    """Run an inline JavaScript script with `node` from PATH (or the container's)."""

    type = "io.kestra.plugin.scripts.node.Script"
    interpreter_command = "node"
    default_image = "node"
    suffix = ".js"
    example = """
- id: compute
  type: io.kestra.plugin.scripts.node.Script
  script: |
    console.log("::" + JSON.stringify({outputs: {answer: 42}}) + "::");
"""

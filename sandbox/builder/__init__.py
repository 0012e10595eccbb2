"""The sandbox builder: what a build pod runs in the sandbox instead of repo2docker's build.

There is no container engine in the sandbox. The builder clones the repository at the commit,
runs repo2docker's buildpack detection (no build), and pushes an OCI image whose one layer holds
the repository's files under /home/jovyan, where repo2docker puts them. The node agent unpacks that
layer into the container's home directory. See `python -m sandbox.builder --help`.
"""

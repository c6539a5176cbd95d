# Appended by the Makefile to the debian/rules stdeb generates (stdeb has no key
# for it; see docs/packaging.md). dh_installsystemd handles the timer only: it
# enables it, starts it on install, restarts it on upgrade and stops it on
# remove. duckdns.service is static (no [Install]) and only ever started by the
# timer: given to dh_installsystemd too, its postinst "start" snippet could never
# start it and printed "duckdns.service is a disabled or a static unit, not
# starting it." on every install. A run in progress is stopped on remove by
# debian/prerm, and an upgrade waits for it to end (debian/preinst): the timer's
# restart here must not reach it (the unit has no PartOf=; docs/packaging.md).
#
# The hooks' units are named after what they do, not the package: --name makes
# dh_installsystemd install debian/duckdns.NAME.{path,service,timer} as NAME.*.
# duckdns-changed.path is enabled and started like the timer; its service is static
# (started by the path unit). duckdns-network.timer is static too (started by the
# network triggers): installed, never enabled nor started by the package.
override_dh_installsystemd:
	dh_installsystemd duckdns.timer
	dh_installsystemd --name=duckdns-changed duckdns-changed.path
	dh_installsystemd --name=duckdns-network --no-enable --no-start --no-stop-on-upgrade duckdns-network.timer


# Appended by the Makefile to the debian/rules stdeb generates (stdeb has no key
# for it; see docs/packaging.md). dh_installsystemd handles the timer only: it
# enables it, starts it on install, restarts it on upgrade and stops it on
# remove. duckdns.service is static (no [Install]) and only ever started by the
# timer: given to dh_installsystemd too, its postinst "start" snippet could never
# start it and printed "duckdns.service is a disabled or a static unit, not
# starting it." on every install. Its stop on remove and its restart (if
# running) on upgrade come through PartOf=duckdns.timer in the unit.
override_dh_installsystemd:
	dh_installsystemd duckdns.timer

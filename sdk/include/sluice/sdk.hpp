// sluice/sdk.hpp — everything a plugin needs, in one include.
#pragma once

#include "sluice/command.hpp"
#include "sluice/config.hpp"
#include "sluice/events.hpp"
#include "sluice/gate.hpp"
#include "sluice/host.hpp"
#include "sluice/listener.hpp"
#include "sluice/log.hpp"
#include "sluice/mailbox.hpp"
#include "sluice/message.hpp"
#include "sluice/metrics.hpp"
#include "sluice/plugin.hpp"
#include "sluice/services.hpp"
#include "sluice/stage.hpp"
#include "sluice/verdict.hpp"
#include "sluice/version.hpp"

/* Builders shared inside the model zoo (zoo.c dispatches to them); not a public interface. */
#ifndef LB_ZOO_INTERNAL_H
#define LB_ZOO_INTERNAL_H

#include "lb_models.h"

/* c * wm rounded to a multiple of 8 (at least 8, never 10% below c * wm). */
int lb_mobilenet_ch(int c, float wm);
void lb_build_mobilenetv1(lb_net *n, int classes, float wm, int h, int w);
void lb_build_mobilenetv2(lb_net *n, int classes, float wm, int h, int w);
void lb_build_efficientnet_lite0(lb_net *n, int classes, float wm, int h, int w);

/* Spiking models (zoo_snn.c): snn-vgg and snn-resnet for cfg->snn. */
void lb_build_snn(lb_net *n, const lb_model_cfg *cfg);

#endif
